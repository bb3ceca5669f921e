//! Record families: the typed record each spider topic carries, its validation and normalization, and
//! how it is encoded as rows for COPY.
//!
//! Each family has a *wire* struct (what the decoder accepts: every field optional so that a missing
//! field gets the `missing_field` reason rather than a generic decode error) and a *valid* struct that
//! can only be built by [`Family::parse`]. Only valid structs can be encoded into COPY rows, so the sink
//! cannot be handed an unvalidated record.

mod analysis;
mod check;
mod corporate;
mod economic;
mod market;
mod news;
mod update;
mod wire;

pub use analysis::{Feature, Insight, Signal, Strategy, DIRECTIONS, INSIGHT_KINDS};
pub use check::{Ctx, TimeUnit};
pub use corporate::{EarningsEvent, SecFiling, FORM_TYPES};
pub use economic::{EconomicIndicator, SupplyChainMetric, FREQUENCIES, METRICS};
pub use market::{CryptoData, MarketData, OrderBook, MAX_DEPTH};
pub use news::{NewsArticle, SocialPost, ENTITY_TYPES, MAX_ENTITIES, PLATFORMS};
pub use update::{SentimentUpdate, UPDATE_TARGETS};
pub use wire::{WireDate, WireTime};

use crate::decode::Payload;
use crate::sink::copy::{Lineage, StagedRows, Table};
use serde::de::DeserializeOwned;

/// Declares a [`Table`] with its columns and their PostgreSQL types; the lineage columns are added.
macro_rules! table {
    ($ident:ident, $name:literal, partitioned = $part:expr, key = [$($key:literal),+], [$($col:literal : $ty:ident),+ $(,)?]) => {
        pub static $ident: crate::sink::copy::Table = crate::sink::copy::Table {
            name: $name,
            key: &[$($key,)+],
            columns: &[$($col,)+ "source_topic", "source_partition", "source_offset"],
            types: &[$(tokio_postgres::types::Type::$ty,)+
                tokio_postgres::types::Type::TEXT,
                tokio_postgres::types::Type::INT4,
                tokio_postgres::types::Type::INT8],
            partitioned: $part,
            stage_sql: include_str!(concat!("../../sql/stage/", $name, ".sql")),
        };
    };
}
pub(crate) use table;

/// Why a record was rejected, as a stable machine-readable code (stored in `quarantine.reason` and in the
/// dead-letter topic's `esurio.reason` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    MissingField,
    InvalidSymbol,
    InvalidText,
    TextTooLong,
    NonFinite,
    NonPositive,
    Negative,
    OutOfRange,
    InvalidTimestamp,
    TimestampInFuture,
    TimestampTooOld,
    OutsidePartitionWindow,
    InvalidCurrency,
    InvalidUrl,
    InvalidLanguage,
    UnknownEnum,
    CrossedBook,
    InvalidBook,
    DuplicateEntity,
    InvalidFormat,
    InvalidInputRef,
}

impl Reason {
    /// Every reason, so that tests and the simulator can prove each one is reachable.
    pub const ALL: &'static [Reason] = &[
        Reason::MissingField,
        Reason::InvalidSymbol,
        Reason::InvalidText,
        Reason::TextTooLong,
        Reason::NonFinite,
        Reason::NonPositive,
        Reason::Negative,
        Reason::OutOfRange,
        Reason::InvalidTimestamp,
        Reason::TimestampInFuture,
        Reason::TimestampTooOld,
        Reason::OutsidePartitionWindow,
        Reason::InvalidCurrency,
        Reason::InvalidUrl,
        Reason::InvalidLanguage,
        Reason::UnknownEnum,
        Reason::CrossedBook,
        Reason::InvalidBook,
        Reason::DuplicateEntity,
        Reason::InvalidFormat,
        Reason::InvalidInputRef,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingField => "missing_field",
            Reason::InvalidSymbol => "invalid_symbol",
            Reason::InvalidText => "invalid_text",
            Reason::TextTooLong => "text_too_long",
            Reason::NonFinite => "non_finite_number",
            Reason::NonPositive => "non_positive_number",
            Reason::Negative => "negative_number",
            Reason::OutOfRange => "out_of_range",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::TimestampInFuture => "timestamp_in_future",
            Reason::TimestampTooOld => "timestamp_too_old",
            Reason::OutsidePartitionWindow => "outside_partition_window",
            Reason::InvalidCurrency => "invalid_currency",
            Reason::InvalidUrl => "invalid_url",
            Reason::InvalidLanguage => "invalid_language",
            Reason::UnknownEnum => "unknown_enum_value",
            Reason::CrossedBook => "crossed_order_book",
            Reason::InvalidBook => "invalid_order_book",
            Reason::DuplicateEntity => "duplicate_entity",
            Reason::InvalidFormat => "invalid_format",
            Reason::InvalidInputRef => "invalid_input_ref",
        }
    }
}

/// A record that failed validation: the reason code, the field, and a message for humans.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub reason: Reason,
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(reason: Reason, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            message: message.into(),
        }
    }

    /// Validation failures are facts about the record: retrying cannot fix them.
    pub fn is_retriable(&self) -> bool {
        false
    }
}

/// What a record whose natural key is already stored with other values does (docs/RECORDS.md).
/// Identical records (every column equal, and for articles and posts the same entity set) are
/// dropped and counted as duplicates under either policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Observations that must not change (ticks, books): the first row stays; the conflicting record
    /// is quarantined as `conflicting_duplicate`, naming the key.
    Reject,
    /// Data that is legitimately restated (revisions, re-crawls): the row takes the newest version by
    /// its `version_at` (the record's own time, or its Kafka timestamp; Kafka order breaks ties);
    /// every other version is kept in `<table>_history`. A parent and its entities change as one.
    Revise,
    /// Records that change existing rows of other tables (`sentiment_update`): applied in Kafka
    /// order, the replaced value kept as history; an update identical to the current value is a
    /// duplicate; one whose row does not exist is quarantined as `unknown_target`.
    Update,
}

/// The reasons the sink gives after looking a record's references up in the database (stage
/// `database`; docs/RECORDS.md): the validator cannot know them.
pub const UNKNOWN_ENTITY: &str = "unknown_entity";
pub const UNKNOWN_STRATEGY: &str = "unknown_strategy";
pub const UNKNOWN_TARGET: &str = "unknown_target";
pub const DATABASE_REASONS: &[&str] = &[UNKNOWN_ENTITY, UNKNOWN_STRATEGY, UNKNOWN_TARGET];

/// Parses a tombstone's Kafka key into the natural key of the row it deletes, as the JSON object
/// text the delete statement binds; `Err` says why the key cannot name a row.
pub type DeleteKey = fn(Option<&[u8]>) -> Result<String, String>;

/// One record family: its wire form, its validation, and its rows.
pub trait Family: Sized {
    /// What the decoders deserialize into (JSON directly, Avro through `decode::avro_de`).
    type Wire: DeserializeOwned;
    /// The family name: the topic suffix and the Avro schema's file stem.
    const NAME: &'static str;
    /// The tables this family's rows go to, parents first (entities after their article).
    const TABLES: &'static [&'static Table];
    /// What a conflicting record with an already stored key does.
    const POLICY: Policy;
    /// Finds the staged records of an offset range whose references the database does not know
    /// (`sql/writeback/refs_<family>.sql`): results must name known symbols and strategies.
    const REFS_SQL: Option<&'static str> = None;
    /// Families whose Kafka tombstones (null values) delete a row.
    const DELETE_KEY: Option<DeleteKey> = None;

    /// Validates and normalizes a decoded record.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the first rule the record breaks.
    fn parse(wire: Self::Wire, ctx: &Ctx) -> Result<Self, ValidationError>;

    /// Appends this record's rows (with lineage) to the staged COPY buffers, one per entry of `TABLES`.
    ///
    /// # Errors
    /// A value failed to encode (a bug: validated values always encode).
    fn encode(&self, lineage: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String>;
}

/// What processing one decoded payload produced.
pub type Processed = Result<(), ValidationError>;

/// Type-erased entry point per family, so that the consumer loop is not generic over 13 families.
pub struct FamilySpec {
    pub name: &'static str,
    pub tables: &'static [&'static Table],
    pub policy: Policy,
    /// The Avro schema (`schemas/<name>.avsc`), embedded so the binary is self-contained.
    pub avro_schema: &'static str,
    /// Deserializes, validates and encodes one payload into `out`.
    pub process: fn(Payload<'_>, &Ctx, &Lineage<'_>, &mut StagedRows) -> Result<(), RecordError>,
    /// See [`Family::REFS_SQL`].
    pub refs_sql: Option<&'static str>,
    /// See [`Family::DELETE_KEY`].
    pub delete_key: Option<DeleteKey>,
}

impl std::fmt::Debug for FamilySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FamilySpec")
            .field("name", &self.name)
            .finish()
    }
}

/// Why a payload did not become rows: its shape did not match the wire struct, or it broke a rule.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The JSON text itself is broken (found while deserializing, which is the only JSON pass).
    #[error("the JSON is {what}: {message}")]
    Json { what: &'static str, message: String },
    #[error("record does not match the {family} contract: {message}")]
    Shape {
        family: &'static str,
        message: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl RecordError {
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Json { what, .. } => {
                if *what == "truncated" {
                    "truncated_json"
                } else {
                    "invalid_json"
                }
            }
            RecordError::Shape { .. } => "schema_mismatch",
            RecordError::Invalid(e) => e.reason.as_str(),
        }
    }

    pub fn is_retriable(&self) -> bool {
        false
    }

    /// Where in the pipeline the record failed: malformed JSON is a decoding failure even though it
    /// is found while deserializing.
    pub fn stage(&self) -> &'static str {
        match self {
            RecordError::Json { .. } => "decode",
            _ => "validate",
        }
    }
}

fn process<F: Family>(
    payload: Payload<'_>,
    ctx: &Ctx,
    lineage: &Lineage<'_>,
    out: &mut StagedRows,
) -> Result<(), RecordError> {
    let (wire, ctx) = match payload {
        Payload::Json(bytes) => {
            let wire = serde_json::from_slice::<F::Wire>(bytes).map_err(|e| {
                use serde_json::error::Category;
                match e.classify() {
                    Category::Eof => RecordError::Json {
                        what: "truncated",
                        message: e.to_string(),
                    },
                    Category::Syntax => RecordError::Json {
                        what: "malformed",
                        message: e.to_string(),
                    },
                    Category::Data | Category::Io => RecordError::Shape {
                        family: F::NAME,
                        message: e.to_string(),
                    },
                }
            })?;
            (wire, ctx.with_int_time(TimeUnit::Millis))
        }
        Payload::Avro(value) => {
            let wire = crate::decode::avro_de::from_value::<F::Wire>(&value).map_err(|e| {
                RecordError::Shape {
                    family: F::NAME,
                    message: e.to_string(),
                }
            })?;
            (wire, ctx.with_int_time(TimeUnit::Micros))
        }
    };
    let record = F::parse(wire, &ctx)?;
    let mark = out.mark();
    record.encode(lineage, out).map_err(|message| {
        out.rollback(mark);
        RecordError::Shape {
            family: F::NAME,
            message: format!("cannot encode: {message}"),
        }
    })
}

macro_rules! spec {
    ($ty:ty, $file:literal) => {
        FamilySpec {
            name: <$ty as Family>::NAME,
            tables: <$ty as Family>::TABLES,
            policy: <$ty as Family>::POLICY,
            avro_schema: include_str!(concat!("../../schemas/", $file, ".avsc")),
            process: process::<$ty>,
            refs_sql: <$ty as Family>::REFS_SQL,
            delete_key: <$ty as Family>::DELETE_KEY,
        }
    };
}

/// All families, in the order topics are listed by default.
pub static FAMILIES: &[FamilySpec] = &[
    spec!(MarketData, "market_data"),
    spec!(CryptoData, "crypto_data"),
    spec!(OrderBook, "order_book"),
    spec!(NewsArticle, "news_article"),
    spec!(SocialPost, "social_post"),
    spec!(EconomicIndicator, "economic_indicator"),
    spec!(SupplyChainMetric, "supply_chain_metric"),
    spec!(EarningsEvent, "earnings_event"),
    spec!(SecFiling, "sec_filing"),
    spec!(Feature, "feature"),
    spec!(Insight, "insight"),
    spec!(Strategy, "strategy"),
    spec!(Signal, "signal"),
];

/// The families that change rows of other tables instead of having their own (kept apart from
/// [`FAMILIES`], whose members each own tables).
pub static UPDATE_FAMILIES: &[FamilySpec] = &[spec!(SentimentUpdate, "sentiment_update")];

/// Looks a family up by name.
pub fn family(name: &str) -> Option<&'static FamilySpec> {
    FAMILIES
        .iter()
        .chain(UPDATE_FAMILIES)
        .find(|f| f.name == name)
}

/// Every family name, in the order topics are listed by default.
pub fn family_names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().chain(UPDATE_FAMILIES).map(|f| f.name)
}

/// Every table, parents before children, as the migrations and exactness checks list them.
pub fn all_tables() -> impl Iterator<Item = &'static Table> {
    FAMILIES.iter().flat_map(|f| f.tables.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::copy::StagedRows;
    use std::time::Duration;

    fn run(name: &str, json: &str) -> Result<StagedRows, RecordError> {
        let f = family(name).unwrap();
        let ctx = Ctx::new(
            Duration::from_secs(300),
            Duration::from_secs(86400 * 365 * 20),
        );
        let l = Lineage {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp: None,
        };
        let mut out = StagedRows::new(f.tables.len());
        (f.process)(Payload::Json(json.as_bytes()), &ctx, &l, &mut out).map(|()| out)
    }

    fn now() -> String {
        chrono::Utc::now().to_rfc3339()
    }

    #[test]
    fn json_syntax_and_shape_errors_are_told_apart() {
        assert_eq!(
            run("market_data", "{\"symbol\": \"AB")
                .unwrap_err()
                .reason(),
            "truncated_json"
        );
        assert_eq!(
            run("market_data", "{\"symbol\": }").unwrap_err().reason(),
            "invalid_json"
        );
        assert_eq!(
            run("market_data", "{} {}").unwrap_err().reason(),
            "invalid_json"
        );
        let e = run("market_data", "{\"price\": {\"a\": 1}}").unwrap_err();
        assert_eq!(e.reason(), "schema_mismatch");
        assert_eq!(e.stage(), "validate");
    }

    #[test]
    fn a_valid_article_stages_its_entities_and_a_duplicate_entity_is_rejected() {
        let ok = format!(
            r#"{{"url":"https://News.example.com/a#x","title":" T ","source":"S","published_at":"{}",
               "entities":[{{"name":"Apple","entity_type":"Organization","symbol":"aapl"}},
                           {{"name":"Tim","entity_type":"person"}}]}}"#,
            now()
        );
        let out = run("news_article", &ok).unwrap();
        assert_eq!(out.buffers[0].rows(), 1);
        assert_eq!(out.buffers[1].rows(), 2);
        let dup = ok.replace(
            "\"Tim\",\"entity_type\":\"person\"",
            "\"Apple\",\"entity_type\":\"organization\"",
        );
        assert_eq!(
            run("news_article", &dup).unwrap_err().reason(),
            "duplicate_entity"
        );
    }

    #[test]
    fn order_books_are_sorted_and_crossed_ones_rejected() {
        let book = |bid: f64| {
            format!(
                r#"{{"symbol":"X","exchange":"E","ts":"{}","bids":[{{"price":1,"size":1}},{{"price":{bid},"size":1}}],"asks":[{{"price":3,"size":1}},{{"price":2.5,"size":1}}]}}"#,
                now()
            )
        };
        assert!(run("order_book", &book(2.0)).is_ok());
        assert_eq!(
            run("order_book", &book(2.6)).unwrap_err().reason(),
            "crossed_order_book"
        );
        assert_eq!(
            run("order_book", &book(1.0)).unwrap_err().reason(),
            "invalid_order_book"
        );
    }

    #[test]
    fn every_family_name_has_a_topic_schema_and_tables() {
        assert_eq!(FAMILIES.len(), 13);
        assert_eq!(all_tables().count(), 15);
        assert_eq!(family_names().count(), 14);
        for f in FAMILIES.iter().chain(UPDATE_FAMILIES) {
            apache_avro::Schema::parse_str(f.avro_schema).unwrap();
            assert!(family(f.name).is_some());
            for t in f.tables {
                assert_eq!(t.columns.len(), t.types.len(), "{}", t.name);
            }
        }
    }
}

#[cfg(test)]
mod regressions {
    use super::*;
    use crate::sink::copy::StagedRows;
    use std::time::Duration;

    fn strategy(params: &str) -> Result<(), RecordError> {
        let f = family("strategy").unwrap();
        let ctx = Ctx::new(Duration::from_secs(300), Duration::from_secs(86400 * 365));
        let json = format!(
            r#"{{"strategy_id":"s","version":1,"name":"n","parameters":{params},"created_at":"{}"}}"#,
            chrono::Utc::now().to_rfc3339()
        );
        let l = Lineage {
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp: None,
        };
        (f.process)(
            Payload::Json(json.as_bytes()),
            &ctx,
            &l,
            &mut StagedRows::new(1),
        )
    }

    #[test]
    fn json_numbers_round_trip_exactly() {
        // Regression (fuzz/regressions/validators/json_float_not_roundtrip): without serde_json's
        // float_roundtrip, 9% of shortest-printed doubles came back 1 ULP off, so the JSON and Avro
        // forms of one record stored different values.
        for x in [91858.14919280779_f64, 2.358007855109106e-306, 0.1, 190.55] {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn strategy_parameters_nul_is_rejected_but_an_escaped_backslash_is_not() {
        // Regression (fuzz/regressions/json_record/strategy_parameters_backslash_u0000_rejected):
        // the text `\u0000` (a backslash then "u0000") is fine; a real U+0000 is not.
        assert!(strategy(r#"{"a":"x\\u0000"}"#).is_ok());
        assert_eq!(
            strategy(r#"{"a":"x\u0000"}"#).unwrap_err().reason(),
            "invalid_text"
        );
        assert_eq!(
            strategy(r#"{"k\u0000":1}"#).unwrap_err().reason(),
            "invalid_text"
        );
    }
}
