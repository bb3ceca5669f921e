//! One quarantine row as a dead-letter message: its headers, and the cut that makes it fit.
//!
//! A dead-letter topic accepts messages up to its `max.message.bytes` (Kafka's default is 1 MiB),
//! but the worker quarantines records up to whatever the source topic accepted (a `too_large`
//! record is larger than `decode.max_record_bytes` by definition). Such a record is published
//! truncated, with headers that say so and point at its quarantine row, which keeps the whole
//! record: the dead-letter copy is a notification, the quarantine table the authority.

use super::PublishError;
use rdkafka::message::{Header, OwnedHeaders};
use tokio_postgres::Row;

/// Longest `esurio.message` header value, in bytes. Messages quote parser errors, which can quote
/// the record; a header is not the place for the record itself.
pub const MESSAGE_HEADER_MAX: usize = 1024;

/// What a message costs beyond its key, payload and header bytes when it is alone in a record
/// batch: the batch header (61 bytes), the record's varints and attributes (at most ~25), and each
/// header's length varints (at most 10 per header, 10 headers). Rounded up generously: a message
/// that misses the limit by a few bytes would be rejected.
pub const RECORD_OVERHEAD: usize = 512;

/// A quarantine row, as claimed by the relay.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub id: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub stage: String,
    pub reason: String,
    pub message: String,
}

impl Quarantined {
    /// Reads a row of `sql/sink/dlq_claim.sql`.
    ///
    /// # Errors
    /// A column is missing or has another type (the SQL and this code disagree).
    pub fn from_row(r: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            source_topic: r.try_get("source_topic")?,
            source_partition: r.try_get("source_partition")?,
            source_offset: r.try_get("source_offset")?,
            key: r.try_get("record_key")?,
            payload: r.try_get("payload")?,
            stage: r.try_get("stage")?,
            reason: r.try_get("reason")?,
            message: r.try_get("message")?,
        })
    }
}

/// A quarantine row ready to produce: headers, and the key and payload cut to fit.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: OwnedHeaders,
    /// Whether the key or payload was cut.
    pub truncated: bool,
    /// Key, payload and header bytes: what counts against the topic's limit (with the overhead).
    pub size: usize,
}

/// `s` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn headers_of(pairs: &[(&str, String)]) -> (OwnedHeaders, usize) {
    let size = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let headers = pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_str()),
        })
    });
    (headers, size)
}

impl Quarantined {
    /// The message for this row, its key and payload cut so that the whole message fits in
    /// `limit` bytes. The key keeps at most half of the room (keys are small; the payload is
    /// what a reader of the dead-letter topic wants to see).
    ///
    /// # Errors
    /// [`PublishError::HeadersDoNotFit`] when even an empty key and payload would not fit.
    pub fn dead_letter(&self, limit: usize) -> Result<DeadLetter<'_>, PublishError> {
        let mut pairs = vec![
            ("esurio.reason", self.reason.clone()),
            ("esurio.stage", self.stage.clone()),
            ("esurio.message", bounded(&self.message, MESSAGE_HEADER_MAX)),
            ("esurio.source.topic", self.source_topic.clone()),
            ("esurio.source.partition", self.source_partition.to_string()),
            ("esurio.source.offset", self.source_offset.to_string()),
            ("esurio.quarantine.id", self.id.to_string()),
        ];
        let key = self.key.as_deref();
        let payload = self.payload.as_deref();
        let (key_len, payload_len) = (key.map_or(0, <[u8]>::len), payload.map_or(0, <[u8]>::len));
        let (_, plain_headers) = headers_of(&pairs);
        if key_len + payload_len + plain_headers + RECORD_OVERHEAD <= limit {
            let (headers, size) = headers_of(&pairs);
            return Ok(DeadLetter {
                key,
                payload,
                headers,
                truncated: false,
                size: size + key_len + payload_len,
            });
        }
        pairs.push(("esurio.truncated", "true".to_owned()));
        pairs.push(("esurio.original.size", payload_len.to_string()));
        pairs.push(("esurio.original.key.size", key_len.to_string()));
        let (headers, header_bytes) = headers_of(&pairs);
        let room = limit.checked_sub(header_bytes + RECORD_OVERHEAD).ok_or(
            PublishError::HeadersDoNotFit {
                limit,
                headers: header_bytes + RECORD_OVERHEAD,
            },
        )?;
        let key_keep = key_len.min(room / 2);
        let payload_keep = payload_len.min(room - key_keep);
        Ok(DeadLetter {
            key: key.map(|k| &k[..key_keep]),
            payload: payload.map(|p| &p[..payload_keep]),
            headers,
            truncated: true,
            size: header_bytes + key_keep + payload_keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn row(key: usize, payload: usize, message: &str) -> Quarantined {
        Quarantined {
            id: 42,
            source_topic: "market_data".into(),
            source_partition: 3,
            source_offset: 1234,
            key: (key > 0).then(|| vec![b'k'; key]),
            payload: Some(vec![b'{'; payload]),
            stage: "decode".into(),
            reason: "too_large".into(),
            message: message.into(),
        }
    }

    fn header(h: &OwnedHeaders, key: &str) -> Option<String> {
        h.iter()
            .find(|x| x.key == key)
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn a_record_that_fits_is_sent_whole_with_its_coordinates() {
        let r = row(8, 1000, "bad");
        let d = r.dead_letter(1_000_000).unwrap();
        assert!(!d.truncated);
        assert_eq!(d.payload.unwrap().len(), 1000);
        assert_eq!(d.key.unwrap().len(), 8);
        assert_eq!(header(&d.headers, "esurio.quarantine.id").unwrap(), "42");
        assert_eq!(header(&d.headers, "esurio.source.offset").unwrap(), "1234");
        assert_eq!(header(&d.headers, "esurio.truncated"), None);
    }

    #[test]
    fn a_record_over_the_limit_is_cut_to_fit_and_says_so() {
        let limit = 100_000;
        let r = row(300_000, 3 * 1024 * 1024, "too large");
        let d = r.dead_letter(limit).unwrap();
        assert!(d.truncated);
        assert!(d.size + RECORD_OVERHEAD <= limit, "{} bytes", d.size);
        // The room is used, not wasted: only the overhead and headers are left out.
        assert!(d.size + RECORD_OVERHEAD > limit - 16);
        assert!(d.payload.unwrap().len() >= (limit - 1000) / 2);
        assert_eq!(header(&d.headers, "esurio.truncated").unwrap(), "true");
        assert_eq!(
            header(&d.headers, "esurio.original.size").unwrap(),
            (3 * 1024 * 1024).to_string()
        );
        assert_eq!(
            header(&d.headers, "esurio.original.key.size").unwrap(),
            "300000"
        );
        assert_eq!(header(&d.headers, "esurio.reason").unwrap(), "too_large");
    }

    #[test]
    fn the_message_header_is_bounded_at_a_character_boundary() {
        let long = "é".repeat(5000);
        let r = row(0, 10, &long);
        let d = r.dead_letter(1_000_000).unwrap();
        let m = header(&d.headers, "esurio.message").unwrap();
        assert!(m.len() <= MESSAGE_HEADER_MAX, "{}", m.len());
        assert!(m.ends_with('…'));
        assert!(m.starts_with("éé"));
    }

    #[test]
    fn a_limit_smaller_than_the_headers_is_an_error() {
        let r = row(0, 10_000, "x");
        assert!(matches!(
            r.dead_letter(600),
            Err(PublishError::HeadersDoNotFit { limit: 600, .. })
        ));
    }
}
