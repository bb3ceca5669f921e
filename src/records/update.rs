//! Updates of stored rows written back by the ML services: `sentiment_update` sets a model's
//! sentiment score on an existing news article or social post. A table-less family: its records
//! are staged like any other, then applied to their target rows (`src/sink/writeback.rs`).

use super::check::{self, Ctx};
use super::{Family, Policy, Reason, ValidationError, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// The staging table only: updates have no table of their own (see `sql/stage/sentiment_update.sql`).
pub static SENTIMENT_UPDATE: Table = Table {
    name: "sentiment_update",
    key: &["target", "key"],
    columns: &[
        "target",
        "key",
        "sentiment_score",
        "model",
        "model_version",
        "inputs",
        "computed_at",
        "source_topic",
        "source_partition",
        "source_offset",
    ],
    types: &[
        tokio_postgres::types::Type::TEXT,
        tokio_postgres::types::Type::UUID,
        tokio_postgres::types::Type::FLOAT8,
        tokio_postgres::types::Type::TEXT,
        tokio_postgres::types::Type::TEXT,
        tokio_postgres::types::Type::TEXT_ARRAY,
        tokio_postgres::types::Type::TIMESTAMPTZ,
        tokio_postgres::types::Type::TEXT,
        tokio_postgres::types::Type::INT4,
        tokio_postgres::types::Type::INT8,
    ],
    partitioned: false,
    stage_sql: include_str!("../../sql/stage/sentiment_update.sql"),
};

/// The tables a sentiment update may target, with the column holding their key.
pub const UPDATE_TARGETS: &[&str] = &["news_article", "social_post"];

#[derive(Debug, Deserialize)]
pub struct SentimentUpdateWire {
    pub target: Option<String>,
    pub key: Option<String>,
    pub sentiment_score: Option<f64>,
    pub model: Option<String>,
    pub model_version: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    pub computed_at: Option<WireTime>,
}

/// A validated sentiment update: which row, the new value and what produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentUpdate {
    pub target: &'static str,
    /// The target row's key: `article_id` or `post_uid`.
    pub key: Uuid,
    pub sentiment_score: f64,
    pub model: String,
    pub model_version: String,
    pub inputs: Vec<String>,
    pub computed_at: DateTime<Utc>,
}

fn uuid_key(v: Option<String>) -> Result<Uuid, ValidationError> {
    let s = check::text(v, "key", 64)?;
    Uuid::parse_str(&s).map_err(|e| {
        ValidationError::new(
            Reason::InvalidFormat,
            "key",
            format!("{s:?} is not a UUID (the target's article_id or post_uid): {e}"),
        )
    })
}

impl Family for SentimentUpdate {
    type Wire = SentimentUpdateWire;
    const NAME: &'static str = "sentiment_update";
    const TABLES: &'static [&'static Table] = &[&SENTIMENT_UPDATE];
    const POLICY: Policy = Policy::Update;

    fn parse(w: SentimentUpdateWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            target: check::one_of(w.target, "target", UPDATE_TARGETS)?,
            key: uuid_key(w.key)?,
            sentiment_score: check::in_range(w.sentiment_score, "sentiment_score", -1.0, 1.0)?,
            model: check::text(w.model, "model", 64)?,
            model_version: check::text(w.model_version, "model_version", 64)?,
            inputs: check::inputs(w.inputs, "inputs")?,
            computed_at: check::time(w.computed_at, "computed_at", ctx)?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        out.buffers[0].row(
            SENTIMENT_UPDATE.types,
            &[
                &self.target,
                &self.key,
                &self.sentiment_score,
                &self.model,
                &self.model_version,
                &self.inputs,
                &self.computed_at,
            ],
            l,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Payload;
    use crate::records::family;

    fn run(json: serde_json::Value) -> Result<StagedRows, crate::records::RecordError> {
        let f = family("sentiment_update").unwrap();
        let ctx = Ctx::new(
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(86400 * 365),
        );
        let l = Lineage {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp: None,
        };
        let bytes = serde_json::to_vec(&json).unwrap();
        let mut out = StagedRows::new(f.tables.len());
        (f.process)(Payload::Json(&bytes), &ctx, &l, &mut out).map(|()| out)
    }

    fn update() -> serde_json::Value {
        serde_json::json!({"target": "News_Article", "key": "6f1c7a52-1111-5222-8333-444455556666",
            "sentiment_score": -0.25, "model": " kw-sentiment ", "model_version": "1",
            "inputs": ["news_article:0:12:3"], "computed_at": Utc::now().to_rfc3339()})
    }

    #[test]
    fn an_update_is_validated_and_staged() {
        let w: SentimentUpdateWire = serde_json::from_value(update()).unwrap();
        let ctx = Ctx::new(
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(86400 * 365),
        );
        let u = SentimentUpdate::parse(w, &ctx).unwrap();
        assert_eq!(u.target, "news_article");
        assert_eq!(u.model, "kw-sentiment");
        assert_eq!(u.inputs, ["news_article:0:12:3"]);
        assert_eq!(run(update()).unwrap().buffers[0].rows(), 1);
        let mut no_inputs = update();
        no_inputs.as_object_mut().unwrap().remove("inputs");
        assert!(run(no_inputs).is_ok(), "inputs are optional");
    }

    #[test]
    fn an_avro_update_reads_like_a_json_one() {
        use apache_avro::types::Value as A;
        let f = family("sentiment_update").unwrap();
        let schema = apache_avro::Schema::parse_str(f.avro_schema).unwrap();
        let mut r = apache_avro::types::Record::new(&schema).unwrap();
        r.put("target", "social_post");
        r.put("key", "6f1c7a52-1111-5222-8333-444455556666");
        r.put("sentiment_score", 0.5f64);
        r.put("model", "kw");
        r.put("model_version", "1");
        r.put("inputs", A::Array(vec![A::String("batch:7".into())]));
        r.put(
            "computed_at",
            A::TimestampMicros(Utc::now().timestamp_micros()),
        );
        let value: A = r.into();
        assert!(value.validate(&schema));
        let ctx = Ctx::new(
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(86400 * 365),
        );
        let l = Lineage {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp: None,
        };
        let mut out = StagedRows::new(1);
        (f.process)(Payload::Avro(value), &ctx, &l, &mut out).unwrap();
        assert_eq!(out.buffers[0].rows(), 1);
    }

    #[test]
    fn a_bad_update_gets_its_reason() {
        let with = |k: &str, v: serde_json::Value| {
            let mut u = update();
            u[k] = v;
            run(u).unwrap_err().reason()
        };
        assert_eq!(with("target", "insight".into()), "unknown_enum_value");
        assert_eq!(with("key", "article 12".into()), "invalid_format");
        assert_eq!(with("sentiment_score", 1.01.into()), "out_of_range");
        assert_eq!(with("model", "  ".into()), "missing_field");
        assert_eq!(
            with("inputs", serde_json::json!(["news_article:0:12"])),
            "invalid_input_ref"
        );
        assert_eq!(with("computed_at", "soon".into()), "invalid_timestamp");
        let mut u = update();
        u.as_object_mut().unwrap().remove("key");
        assert_eq!(run(u).unwrap_err().reason(), "missing_field");
    }
}
