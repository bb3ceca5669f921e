//! Decoding: raw Kafka payload bytes to a [`Payload`] the record families can deserialize.
//!
//! Three encodings are accepted per topic, chosen by configuration or detected from the first bytes:
//! - the Confluent Schema Registry wire format: magic byte `0`, a 4-byte big-endian schema id, an Avro
//!   body written with that schema (fetched from the registry, cached, resolved against ours);
//! - Avro single-object encoding: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the writer schema, the
//!   body (we accept our own schema's fingerprint);
//! - JSON (an object; UTF-8).
//!
//! Nothing here panics on hostile input: sizes are checked before anything is allocated, apache-avro's
//! allocation limit is set to the record size limit, and serde_json's recursion limit stops deep nesting.

pub mod avro_de;
mod registry;
pub mod registry_stub;

pub use registry::Registry;

use apache_avro::types::Value;
use apache_avro::Schema;
use serde::Deserialize;
use std::sync::Arc;

/// How a topic's payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Detect per record from the first bytes.
    #[default]
    Auto,
    Json,
    AvroRegistry,
    AvroSingleObject,
}

/// A decoded payload, ready for a family to deserialize into its wire struct.
#[derive(Debug)]
pub enum Payload<'a> {
    Json(&'a [u8]),
    Avro(Value),
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the record is empty (no payload)")]
    Empty,
    #[error("the record is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("unknown encoding: first byte 0x{0:02x} is none of 0x00 (schema registry), 0xc3 (Avro single object) or '{{' (JSON)")]
    UnknownFormat(u8),
    #[error("expected {expected}, but the first byte is 0x{found:02x}")]
    WrongMagic { expected: &'static str, found: u8 },
    #[error("the record ends after {0} bytes, inside its header")]
    TruncatedHeader(usize),
    #[error("schema id {0} is not known to the schema registry")]
    UnknownSchemaId(u32),
    #[error("the schema registry's schema {id} cannot be used: {message}")]
    BadWriterSchema { id: u32, message: String },
    #[error("the schema registry is unreachable: {0}")]
    RegistryUnavailable(String),
    #[error(
        "the record is in the schema registry format but no schema registry URL is configured"
    )]
    NoRegistry,
    #[error("Avro single-object fingerprint {0} is not the fingerprint of our schema")]
    UnknownFingerprint(String),
    #[error("the Avro body is not valid for the writer schema: {0}")]
    Avro(String),
    #[error("{0} bytes are left over after the Avro body")]
    TrailingBytes(usize),
    #[error("the JSON is not valid UTF-8: {0}")]
    InvalidUtf8(std::str::Utf8Error),
    #[error("the JSON is nested too deeply: {0}")]
    TooDeep(String),
    #[error("the JSON is truncated: {0}")]
    TruncatedJson(String),
    #[error("the JSON is malformed: {0}")]
    InvalidJson(String),
}

impl DecodeError {
    /// The machine-readable reason stored with the quarantined record.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_payload",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::UnknownFormat(_) => "unknown_format",
            DecodeError::WrongMagic { .. } => "wrong_magic_byte",
            DecodeError::TruncatedHeader(_) => "truncated_header",
            DecodeError::UnknownSchemaId(_) => "unknown_schema_id",
            DecodeError::BadWriterSchema { .. } => "incompatible_schema",
            DecodeError::RegistryUnavailable(_) => "registry_unavailable",
            DecodeError::NoRegistry => "no_registry_configured",
            DecodeError::UnknownFingerprint(_) => "unknown_fingerprint",
            DecodeError::Avro(_) => "invalid_avro",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
            DecodeError::InvalidUtf8(_) => "invalid_utf8",
            DecodeError::TooDeep(_) => "nesting_too_deep",
            DecodeError::TruncatedJson(_) => "truncated_json",
            DecodeError::InvalidJson(_) => "invalid_json",
        }
    }

    /// Retry (and never quarantine) what a retry can fix: the registry being down. A missing registry
    /// URL is a configuration error; retrying lets an operator fix it without losing the record.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            DecodeError::RegistryUnavailable(_) | DecodeError::NoRegistry
        )
    }
}

/// Decodes one topic's payloads against the family's Avro schema.
pub struct Decoder {
    format: Format,
    max_bytes: usize,
    reader: Arc<Schema>,
    fingerprint: [u8; 8],
    registry: Option<Arc<Registry>>,
}

impl Decoder {
    /// # Errors
    /// The embedded schema does not parse (a build defect, caught by tests).
    pub fn new(
        schema_json: &str,
        format: Format,
        max_bytes: usize,
        registry: Option<Arc<Registry>>,
    ) -> Result<Self, apache_avro::Error> {
        let reader = Schema::parse_str(schema_json)?;
        Ok(Self {
            format,
            max_bytes,
            fingerprint: fingerprint(&reader),
            reader: Arc::new(reader),
            registry,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.reader
    }

    /// # Errors
    /// A [`DecodeError`] saying what is wrong with the bytes (or that the registry is unreachable).
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        let first = bytes[0];
        let format = match self.format {
            Format::Auto => match first {
                0x00 => Format::AvroRegistry,
                0xC3 => Format::AvroSingleObject,
                _ if first == b'{' || first.is_ascii_whitespace() => Format::Json,
                _ => return Err(DecodeError::UnknownFormat(first)),
            },
            f => f,
        };
        match format {
            Format::AvroRegistry => self.decode_registry(bytes),
            Format::AvroSingleObject => self.decode_single_object(bytes),
            _ => decode_json(bytes),
        }
    }

    fn decode_registry<'a>(&self, bytes: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        if bytes[0] != 0 {
            return Err(DecodeError::WrongMagic {
                expected: "0x00 (schema registry wire format)",
                found: bytes[0],
            });
        }
        if bytes.len() < 5 {
            return Err(DecodeError::TruncatedHeader(bytes.len()));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let registry = self.registry.as_ref().ok_or(DecodeError::NoRegistry)?;
        let writer = registry.schema(id)?;
        self.avro_body(&writer, &bytes[5..])
    }

    fn decode_single_object<'a>(&self, bytes: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        if bytes[0] != 0xC3 {
            return Err(DecodeError::WrongMagic {
                expected: "0xc3 0x01 (Avro single-object encoding)",
                found: bytes[0],
            });
        }
        if bytes.len() < 10 {
            return Err(DecodeError::TruncatedHeader(bytes.len()));
        }
        if bytes[1] != 0x01 {
            return Err(DecodeError::WrongMagic {
                expected: "0xc3 0x01 (Avro single-object encoding)",
                found: bytes[1],
            });
        }
        if bytes[2..10] != self.fingerprint {
            return Err(DecodeError::UnknownFingerprint(hex(&bytes[2..10])));
        }
        let reader = self.reader.clone();
        self.avro_body(&reader, &bytes[10..])
    }

    fn avro_body<'a>(&self, writer: &Schema, body: &[u8]) -> Result<Payload<'a>, DecodeError> {
        let mut input = EofGuard {
            rest: body,
            hit_eof: false,
        };
        let reader = if std::ptr::eq(writer, &*self.reader) || *writer == *self.reader {
            None
        } else {
            Some(&*self.reader)
        };
        let value = apache_avro::from_avro_datum(writer, &mut input, reader)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        if input.hit_eof {
            return Err(DecodeError::Avro(
                "the body ends before the record does (truncated)".into(),
            ));
        }
        if !input.rest.is_empty() {
            return Err(DecodeError::TrailingBytes(input.rest.len()));
        }
        Ok(Payload::Avro(value))
    }
}

/// A reader that remembers whether anyone tried to read past the end. apache-avro turns an end of
/// input inside a string or a union index into a null value instead of an error (it is how it
/// detects the end of a container file), which would let a truncated record through.
struct EofGuard<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl std::io::Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.hit_eof = true;
            return Ok(0);
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// The 8-byte CRC-64-AVRO fingerprint, in the byte order single-object encoding puts on the wire.
pub fn fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<apache_avro::rabin::Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deepest JSON nesting accepted. Our records nest at most four levels (strategy parameters a few
/// more); deeper input is hostile or broken, and rejecting it bounds the work of every later step.
pub const MAX_JSON_DEPTH: usize = 32;

fn decode_json(bytes: &[u8]) -> Result<Payload<'_>, DecodeError> {
    std::str::from_utf8(bytes).map_err(DecodeError::InvalidUtf8)?;
    // serde would also accept a struct as a positional array; the contract is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::InvalidJson(
            "a record must be a JSON object".into(),
        ));
    }
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(DecodeError::TooDeep(format!(
            "nesting depth exceeds {MAX_JSON_DEPTH}"
        )));
    }
    // Syntax is checked by the family's deserialization (one pass, not two); its errors are
    // classified there as `invalid_json` / `truncated_json`.
    Ok(Payload::Json(bytes))
}

/// The maximum bracket nesting of a JSON text, ignoring brackets inside strings. One linear pass
/// with no allocation, stopping as soon as the limit is passed.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_str, mut esc) = (false, false);
    for &b in bytes {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > MAX_JSON_DEPTH {
                        break;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Caps what apache-avro may allocate for one declared length (a hostile record can declare a
/// 2 GiB string in five bytes). Process-wide, set once at start-up; later calls keep the first value.
pub fn limit_avro_allocations(max_record_bytes: usize) {
    apache_avro::util::max_allocation_bytes(max_record_bytes.max(1024));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{family, Ctx};
    use crate::sink::copy::{Lineage, StagedRows};
    use rand::{Rng, SeedableRng};
    use std::time::Duration;

    const MAX: usize = 64 * 1024;

    fn decoder(name: &str, format: Format, registry: Option<Arc<Registry>>) -> Decoder {
        limit_avro_allocations(MAX);
        Decoder::new(family(name).unwrap().avro_schema, format, MAX, registry).unwrap()
    }

    fn reason(r: Result<Payload<'_>, DecodeError>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.reason())
    }

    fn avro_body(d: &Decoder) -> Vec<u8> {
        use apache_avro::types::Record;
        let mut r = Record::new(d.schema()).unwrap();
        r.put("symbol", "AAPL");
        r.put("exchange", "XNAS");
        r.put(
            "ts",
            apache_avro::types::Value::TimestampMicros(chrono::Utc::now().timestamp_micros()),
        );
        r.put("price", 1.5f64);
        r.put("volume", 2.0f64);
        r.put(
            "bid",
            apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
        );
        r.put(
            "ask",
            apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
        );
        r.put("currency", "USD");
        apache_avro::to_avro_datum(d.schema(), r).unwrap()
    }

    #[test]
    fn every_embedded_schema_parses() {
        for f in crate::records::FAMILIES {
            Decoder::new(f.avro_schema, Format::Auto, MAX, None)
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        }
    }

    #[test]
    fn framing_errors_have_reasons() {
        let d = decoder("market_data", Format::Auto, None);
        assert_eq!(reason(d.decode(b"")), "empty_payload");
        assert_eq!(reason(d.decode(&vec![b'{'; MAX + 1])), "too_large");
        assert_eq!(reason(d.decode(b"\x7fELF")), "unknown_format");
        assert_eq!(reason(d.decode(b"\x00\x00\x00")), "truncated_header");
        let e = d.decode(b"\x00\x00\x00\x00\x01abc").unwrap_err();
        assert_eq!(e.reason(), "no_registry_configured");
        assert!(e.is_retriable());
        let forced = decoder("market_data", Format::AvroRegistry, None);
        assert_eq!(reason(forced.decode(b"{}")), "wrong_magic_byte");
        let forced = decoder("market_data", Format::AvroSingleObject, None);
        assert_eq!(reason(forced.decode(b"\x00\x01\x02")), "wrong_magic_byte");
        assert_eq!(
            reason(forced.decode(b"\xc3\x02\x00\x00\x00\x00\x00\x00\x00\x00")),
            "wrong_magic_byte"
        );
    }

    #[test]
    fn single_object_fingerprint_truncation_and_trailing_bytes() {
        let d = decoder("market_data", Format::Auto, None);
        let body = avro_body(&d);
        let mut good = vec![0xC3, 0x01];
        good.extend_from_slice(&fingerprint(d.schema()));
        good.extend_from_slice(&body);
        assert!(matches!(d.decode(&good), Ok(Payload::Avro(_))));
        let mut wrong = good.clone();
        wrong[2] ^= 0xff;
        assert_eq!(reason(d.decode(&wrong)), "unknown_fingerprint");
        for cut in 1..body.len() {
            assert_eq!(
                reason(d.decode(&good[..good.len() - cut])),
                "invalid_avro",
                "cut {cut}"
            );
        }
        assert_eq!(reason(d.decode(&good[..6])), "truncated_header");
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"xx");
        assert_eq!(reason(d.decode(&trailing)), "trailing_bytes");
    }

    #[test]
    fn avro_with_a_huge_declared_length_is_rejected_without_allocating_it() {
        let d = decoder("market_data", Format::Auto, None);
        let mut rec = vec![0xC3, 0x01];
        rec.extend_from_slice(&fingerprint(d.schema()));
        // symbol: a string whose zig-zag varint length is ~2^40 bytes.
        rec.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        assert_eq!(reason(d.decode(&rec)), "invalid_avro");
    }

    #[test]
    fn registry_ids_known_unknown_and_unreachable() {
        let stub = registry_stub::serve(0).unwrap();
        let schema = family("market_data").unwrap().avro_schema;
        let id: u32 = ureq::post(&format!("{}/subjects/x-value/versions", stub.url()))
            .send_json(serde_json::json!({ "schema": schema }))
            .unwrap()
            .body_mut()
            .read_json::<serde_json::Value>()
            .unwrap()["id"]
            .as_u64()
            .unwrap() as u32;
        let reg = Arc::new(Registry::new(&stub.url(), Duration::from_secs(2)));
        let d = decoder("market_data", Format::Auto, Some(reg));
        let body = avro_body(&d);
        let mut rec = vec![0u8];
        rec.extend_from_slice(&id.to_be_bytes());
        rec.extend_from_slice(&body);
        assert!(matches!(d.decode(&rec), Ok(Payload::Avro(_))));
        rec[1..5].copy_from_slice(&999_999u32.to_be_bytes());
        let e = d.decode(&rec).unwrap_err();
        assert_eq!(e.reason(), "unknown_schema_id");
        assert!(!e.is_retriable());

        // A port nothing listens on: the registry is down, which is retriable, never quarantined.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let reg = Arc::new(Registry::new(
            &format!("http://{closed}"),
            Duration::from_millis(500),
        ));
        let d = decoder("market_data", Format::Auto, Some(reg));
        let e = d.decode(&rec).unwrap_err();
        assert_eq!(e.reason(), "registry_unavailable");
        assert!(e.is_retriable());
    }

    #[test]
    fn json_errors_have_reasons() {
        let d = decoder("market_data", Format::Auto, None);
        assert_eq!(
            reason(d.decode(b"{\"symbol\": \"A\xffB\"}")),
            "invalid_utf8"
        );
        let deep_in_string = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert_eq!(reason(d.decode(deep_in_string.as_bytes())), "ok");
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(reason(d.decode(deep.as_bytes())), "nesting_too_deep");
        assert_eq!(reason(d.decode(b" {\"symbol\": \"AB\"} ")), "ok");
        // Regression (fuzz/regressions/*/json_array_record_accepted): arrays are not records.
        assert_eq!(reason(d.decode(b" [\"AAPL\", \"XNAS\"]")), "invalid_json");
    }

    #[test]
    fn random_bytes_never_panic_any_family() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let ctx = Ctx::new(
            Duration::from_secs(300),
            Duration::from_secs(86400 * 365 * 20),
        );
        for f in crate::records::FAMILIES {
            let d = Decoder::new(f.avro_schema, Format::Auto, MAX, None).unwrap();
            let mut fp = vec![0xC3, 0x01];
            fp.extend_from_slice(&fingerprint(d.schema()));
            for i in 0..3000 {
                let n = rng.gen_range(0..200);
                let mut bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                match i % 3 {
                    0 => bytes.splice(0..0, fp.iter().copied()).for_each(drop),
                    1 => bytes.insert(0, b'{'),
                    _ => {}
                }
                if let Ok(p) = d.decode(&bytes) {
                    let l = Lineage {
                        topic: "t",
                        partition: 0,
                        offset: i,
                        timestamp: None,
                    };
                    let _ = (f.process)(p, &ctx, &l, &mut StagedRows::new(f.tables.len()));
                }
            }
        }
    }
}
