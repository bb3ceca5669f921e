//! What the ML services write back: features, insights, strategies and signals.

use super::check::{self, Ctx};
use super::{table, Family, Reason, ValidationError, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, Utc};
use serde::Deserialize;

table!(FEATURE, "feature", partitioned = false, key = ["entity", "name", "ts", "model_version"], [
    "entity": TEXT, "name": TEXT, "ts": TIMESTAMPTZ, "value": FLOAT8, "model_version": TEXT,
    "model": TEXT, "inputs": TEXT_ARRAY, "version_at": TIMESTAMPTZ,
]);
table!(INSIGHT, "insight", partitioned = false, key = ["insight_id"], [
    "insight_id": TEXT, "symbol": TEXT, "kind": TEXT, "title": TEXT, "body": TEXT,
    "confidence": FLOAT8, "generated_at": TIMESTAMPTZ, "model": TEXT,
    "model_version": TEXT, "inputs": TEXT_ARRAY, "version_at": TIMESTAMPTZ,
]);
table!(STRATEGY, "strategy", partitioned = false, key = ["strategy_id", "version"], [
    "strategy_id": TEXT, "version": INT4, "name": TEXT, "description": TEXT, "parameters": JSONB,
    "created_at": TIMESTAMPTZ, "model": TEXT, "model_version": TEXT, "inputs": TEXT_ARRAY,
    "version_at": TIMESTAMPTZ,
]);
table!(SIGNAL, "signal", partitioned = false, key = ["strategy_id", "strategy_version", "symbol", "ts"], [
    "strategy_id": TEXT, "strategy_version": INT4, "symbol": TEXT, "ts": TIMESTAMPTZ,
    "direction": TEXT, "strength": FLOAT8, "confidence": FLOAT8, "horizon_seconds": INT8,
    "model": TEXT, "model_version": TEXT, "inputs": TEXT_ARRAY, "version_at": TIMESTAMPTZ,
]);

pub const INSIGHT_KINDS: &[&str] = &[
    "anomaly",
    "trend",
    "sentiment_shift",
    "correlation",
    "event",
];
pub const DIRECTIONS: &[&str] = &["long", "short", "flat"];

#[derive(Debug, Deserialize)]
pub struct FeatureWire {
    pub entity: Option<String>,
    pub name: Option<String>,
    pub ts: Option<WireTime>,
    pub value: Option<f64>,
    pub model_version: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// A validated feature value for an entity at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub entity: String,
    pub name: String,
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub model_version: String,
    pub model: Option<String>,
    /// What the value was computed from (event ids or batch ids; a set).
    pub inputs: Vec<String>,
}

fn feature_name(v: Option<String>) -> Result<String, ValidationError> {
    let s = check::text(v, "name", 128)?.to_ascii_lowercase();
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.')))
    {
        return Err(ValidationError::new(
            Reason::InvalidFormat,
            "name",
            format!("contains {c:?}; feature names use a-z, 0-9, '_' and '.'"),
        ));
    }
    Ok(s)
}

impl Family for Feature {
    type Wire = FeatureWire;
    const NAME: &'static str = "feature";
    const TABLES: &'static [&'static Table] = &[&FEATURE];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: FeatureWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            entity: check::symbol(w.entity, "entity")?,
            name: feature_name(w.name)?,
            ts: check::time(w.ts, "ts", ctx)?,
            value: check::finite(w.value, "value")?,
            model_version: check::text(w.model_version, "model_version", 64)?,
            model: check::opt_text(w.model, "model", 64)?,
            inputs: check::inputs(w.inputs, "inputs")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            FEATURE.types,
            &[
                &self.entity,
                &self.name,
                &self.ts,
                &self.value,
                &self.model_version,
                &self.model,
                &self.inputs,
                &version_at,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct InsightWire {
    pub insight_id: Option<String>,
    pub symbol: Option<String>,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub confidence: Option<f64>,
    pub generated_at: Option<WireTime>,
    pub model: Option<String>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// A validated insight produced by a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    pub insight_id: String,
    pub symbol: Option<String>,
    pub kind: &'static str,
    pub title: String,
    pub body: Option<String>,
    pub confidence: f64,
    pub generated_at: DateTime<Utc>,
    pub model: String,
    pub model_version: Option<String>,
    /// What the insight was computed from (event ids or batch ids; a set).
    pub inputs: Vec<String>,
}

impl Family for Insight {
    type Wire = InsightWire;
    const NAME: &'static str = "insight";
    const TABLES: &'static [&'static Table] = &[&INSIGHT];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: InsightWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            insight_id: check::text(w.insight_id, "insight_id", 128)?,
            symbol: check::opt_symbol(w.symbol, "symbol")?,
            kind: check::one_of(w.kind, "kind", INSIGHT_KINDS)?,
            title: check::text(w.title, "title", 500)?,
            body: check::opt_body(w.body, "body", 20_000)?,
            confidence: check::in_range(w.confidence, "confidence", 0.0, 1.0)?,
            generated_at: check::time(w.generated_at, "generated_at", ctx)?,
            model: check::text(w.model, "model", 64)?,
            model_version: check::opt_text(w.model_version, "model_version", 64)?,
            inputs: check::inputs(w.inputs, "inputs")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = self.generated_at;
        out.buffers[0].row(
            INSIGHT.types,
            &[
                &self.insight_id,
                &self.symbol,
                &self.kind,
                &self.title,
                &self.body,
                &self.confidence,
                &self.generated_at,
                &self.model,
                &self.model_version,
                &self.inputs,
                &version_at,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct StrategyWire {
    pub strategy_id: Option<String>,
    pub version: Option<i64>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// A JSON object; Avro carries it as a string holding one.
    pub parameters: Option<serde_json::Value>,
    pub created_at: Option<WireTime>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// A validated version of a trading strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub strategy_id: String,
    pub version: i32,
    pub name: String,
    pub description: Option<String>,
    pub parameters: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub model: Option<String>,
    pub model_version: Option<String>,
    /// What the strategy version was derived from (event ids or batch ids; a set).
    pub inputs: Vec<String>,
}

fn parameters(v: Option<serde_json::Value>) -> Result<serde_json::Value, ValidationError> {
    let v = match check::required(v, "parameters")? {
        serde_json::Value::String(s) => serde_json::from_str(&s).map_err(|e| {
            ValidationError::new(
                Reason::InvalidFormat,
                "parameters",
                format!("is not JSON: {e}"),
            )
        })?,
        v => v,
    };
    if !v.is_object() {
        return Err(ValidationError::new(
            Reason::InvalidFormat,
            "parameters",
            "must be a JSON object",
        ));
    }
    if has_nul(&v) {
        return Err(ValidationError::new(
            Reason::InvalidText,
            "parameters",
            "contains U+0000, which jsonb cannot store",
        ));
    }
    Ok(v)
}

/// Whether any string or key in a JSON value holds U+0000 (jsonb cannot store it).
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

impl Family for Strategy {
    type Wire = StrategyWire;
    const NAME: &'static str = "strategy";
    const TABLES: &'static [&'static Table] = &[&STRATEGY];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: StrategyWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            strategy_id: check::text(w.strategy_id, "strategy_id", 128)?,
            version: check::int_in_range(w.version, "version", 1, i32::MAX as i64)? as i32,
            name: check::text(w.name, "name", 200)?,
            description: check::opt_body(w.description, "description", 20_000)?,
            parameters: parameters(w.parameters)?,
            created_at: check::time(w.created_at, "created_at", ctx)?,
            model: check::opt_text(w.model, "model", 64)?,
            model_version: check::opt_text(w.model_version, "model_version", 64)?,
            inputs: check::inputs(w.inputs, "inputs")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = self.created_at;
        out.buffers[0].row(
            STRATEGY.types,
            &[
                &self.strategy_id,
                &self.version,
                &self.name,
                &self.description,
                &self.parameters,
                &self.created_at,
                &self.model,
                &self.model_version,
                &self.inputs,
                &version_at,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct SignalWire {
    pub strategy_id: Option<String>,
    pub strategy_version: Option<i64>,
    pub symbol: Option<String>,
    pub ts: Option<WireTime>,
    pub direction: Option<String>,
    pub strength: Option<f64>,
    pub confidence: Option<f64>,
    pub horizon_seconds: Option<i64>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// A validated trading signal from a strategy version.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub strategy_id: String,
    pub strategy_version: i32,
    pub symbol: String,
    pub ts: DateTime<Utc>,
    pub direction: &'static str,
    pub strength: f64,
    pub confidence: Option<f64>,
    pub horizon_seconds: Option<i64>,
    pub model: Option<String>,
    pub model_version: Option<String>,
    /// What the signal was computed from (event ids or batch ids; a set).
    pub inputs: Vec<String>,
}

impl Family for Signal {
    type Wire = SignalWire;
    const NAME: &'static str = "signal";
    const TABLES: &'static [&'static Table] = &[&SIGNAL];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: SignalWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        let horizon_seconds = match w.horizon_seconds {
            Some(h) if h <= 0 => {
                return Err(ValidationError::new(
                    Reason::NonPositive,
                    "horizon_seconds",
                    format!("must be positive, got {h}"),
                ))
            }
            h => h,
        };
        Ok(Self {
            strategy_id: check::text(w.strategy_id, "strategy_id", 128)?,
            strategy_version: check::int_in_range(
                w.strategy_version,
                "strategy_version",
                1,
                i32::MAX as i64,
            )? as i32,
            symbol: check::symbol(w.symbol, "symbol")?,
            ts: check::time(w.ts, "ts", ctx)?,
            direction: check::one_of(w.direction, "direction", DIRECTIONS)?,
            strength: check::in_range(w.strength, "strength", 0.0, 1.0)?,
            confidence: check::opt_in_range(w.confidence, "confidence", 0.0, 1.0)?,
            horizon_seconds,
            model: check::opt_text(w.model, "model", 64)?,
            model_version: check::opt_text(w.model_version, "model_version", 64)?,
            inputs: check::inputs(w.inputs, "inputs")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            SIGNAL.types,
            &[
                &self.strategy_id,
                &self.strategy_version,
                &self.symbol,
                &self.ts,
                &self.direction,
                &self.strength,
                &self.confidence,
                &self.horizon_seconds,
                &self.model,
                &self.model_version,
                &self.inputs,
                &version_at,
            ],
            l,
        )
    }
}
