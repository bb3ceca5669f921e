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
