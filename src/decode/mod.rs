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
        let mut rest = body;
        let reader = if std::ptr::eq(writer, &*self.reader) || *writer == *self.reader {
            None
        } else {
            Some(&*self.reader)
        };
        let value = apache_avro::from_avro_datum(writer, &mut rest, reader)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(Payload::Avro(value))
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

fn decode_json(bytes: &[u8]) -> Result<Payload<'_>, DecodeError> {
    std::str::from_utf8(bytes).map_err(DecodeError::InvalidUtf8)?;
    // Validate the syntax once here (cheap, no allocation) so that the family's deserialization only
    // fails for shape reasons, and syntax errors get a precise reason of their own.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde::de::IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|e| {
            let m = e.to_string();
            if m.contains("recursion limit") {
                DecodeError::TooDeep(m)
            } else if e.is_eof() {
                DecodeError::TruncatedJson(m)
            } else {
                DecodeError::InvalidJson(m)
            }
        })?;
    Ok(Payload::Json(bytes))
}

/// Caps what apache-avro may allocate for one declared length (a hostile record can declare a
/// 2 GiB string in five bytes). Process-wide, set once at start-up; later calls keep the first value.
pub fn limit_avro_allocations(max_record_bytes: usize) {
    apache_avro::util::max_allocation_bytes(max_record_bytes.max(1024));
}
