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
    const REFS_SQL: Option<&'static str> =
        Some(include_str!("../../sql/writeback/refs_feature.sql"));

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
    const REFS_SQL: Option<&'static str> =
        Some(include_str!("../../sql/writeback/refs_insight.sql"));
    const DELETE_KEY: Option<super::DeleteKey> = Some(insight_key);

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
    const DELETE_KEY: Option<super::DeleteKey> = Some(strategy_key);

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
    const REFS_SQL: Option<&'static str> =
        Some(include_str!("../../sql/writeback/refs_signal.sql"));
    const DELETE_KEY: Option<super::DeleteKey> = Some(signal_key);

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

// ---------------------------------------------------------------------------------------------
// Tombstone keys (docs/RECORDS.md): the natural key of the row a null value deletes, normalized as
// the validator normalizes records, as the JSON object the delete statement binds.

fn key_text(key: Option<&[u8]>) -> Result<&str, String> {
    let key = key.ok_or("a tombstone without a key names no row")?;
    std::str::from_utf8(key).map_err(|e| format!("the key is not UTF-8: {e}"))
}

fn key_object(key: Option<&[u8]>) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str(key_text(key)?) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) | Err(_) => Err("the key is not a JSON object".into()),
    }
}

fn key_str(o: &serde_json::Map<String, serde_json::Value>, f: &str) -> Option<String> {
    o.get(f).and_then(|v| v.as_str()).map(str::to_owned)
}

fn key_int(o: &serde_json::Map<String, serde_json::Value>, f: &str) -> Option<i64> {
    o.get(f).and_then(serde_json::Value::as_i64)
}

/// An insight's key: its `insight_id` as plain text.
pub fn insight_key(key: Option<&[u8]>) -> Result<String, String> {
    let id = check::text(Some(key_text(key)?.to_owned()), "insight_id", 128)
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({ "insight_id": id }).to_string())
}

/// A strategy version's key: `{"strategy_id": "...", "version": 2}`.
pub fn strategy_key(key: Option<&[u8]>) -> Result<String, String> {
    let o = key_object(key)?;
    let id =
        check::text(key_str(&o, "strategy_id"), "strategy_id", 128).map_err(|e| e.to_string())?;
    let version = check::int_in_range(key_int(&o, "version"), "version", 1, i32::MAX as i64)
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({ "strategy_id": id, "version": version }).to_string())
}

/// A signal's key: `{"strategy_id": "...", "strategy_version": 1, "symbol": "AAPL", "ts": "RFC 3339"}`.
pub fn signal_key(key: Option<&[u8]>) -> Result<String, String> {
    let o = key_object(key)?;
    let e = |e: ValidationError| e.to_string();
    let id = check::text(key_str(&o, "strategy_id"), "strategy_id", 128).map_err(e)?;
    let version = check::int_in_range(
        key_int(&o, "strategy_version"),
        "strategy_version",
        1,
        i32::MAX as i64,
    )
    .map_err(e)?;
    let symbol = check::symbol(key_str(&o, "symbol"), "symbol").map_err(e)?;
    let ts = key_str(&o, "ts").ok_or("ts: is required")?;
    let ts = DateTime::parse_from_rfc3339(ts.trim())
        .map_err(|err| format!("ts: {ts:?} is not RFC 3339: {err}"))?
        .with_timezone(&Utc);
    // Microseconds, as stored (check::time truncates the same way).
    let ts = DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts);
    Ok(serde_json::json!({
        "strategy_id": id,
        "strategy_version": version,
        "symbol": symbol,
        "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_keys_are_normalized_or_refused() {
        assert_eq!(
            insight_key(Some(b" regime:AAPL:1 ")).unwrap(),
            r#"{"insight_id":"regime:AAPL:1"}"#
        );
        assert!(insight_key(None).is_err());
        assert!(insight_key(Some(b"  ")).is_err());
        assert_eq!(
            strategy_key(Some(br#"{"strategy_id":"mr","version":2}"#)).unwrap(),
            r#"{"strategy_id":"mr","version":2}"#
        );
        for bad in [
            &b"mr"[..],
            br#"{"strategy_id":"mr"}"#,
            br#"{"strategy_id":"mr","version":0}"#,
            br#"[1]"#,
        ] {
            assert!(
                strategy_key(Some(bad)).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let k = signal_key(Some(
            br#"{"strategy_id":"mr","strategy_version":1,"symbol":" aapl","ts":"2026-12-01T10:00:00.1234567+01:00"}"#,
        ))
        .unwrap();
        assert_eq!(
            k,
            r#"{"strategy_id":"mr","strategy_version":1,"symbol":"AAPL","ts":"2026-12-01T09:00:00.123456Z"}"#
        );
        assert!(signal_key(Some(
            br#"{"strategy_id":"mr","strategy_version":1,"symbol":"AAPL"}"#
        ))
        .is_err());
        assert!(signal_key(Some(b"AAPL")).is_err());
    }

    #[test]
    fn results_carry_their_producer_and_inputs() {
        let ctx = Ctx::new(
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(86400 * 365),
        );
        let w: FeatureWire = serde_json::from_str(&format!(
            r#"{{"entity":"aapl","name":"sma_20","ts":"{}","value":1.5,"model_version":"1","model":"ref",
                "inputs":["market_data:0:2:1","batch:4","market_data:0:2:1"]}}"#,
            Utc::now().to_rfc3339()
        ))
        .unwrap();
        let f = Feature::parse(w, &ctx).unwrap();
        assert_eq!(f.model.as_deref(), Some("ref"));
        assert_eq!(f.inputs, ["batch:4", "market_data:0:2:1"]);
        let w: SignalWire = serde_json::from_str(&format!(
            r#"{{"strategy_id":"s","strategy_version":1,"symbol":"AAPL","ts":"{}","direction":"long","strength":0.5,
                "inputs":["market_data:0:2"]}}"#,
            Utc::now().to_rfc3339()
        ))
        .unwrap();
        assert_eq!(
            Signal::parse(w, &ctx).unwrap_err().reason,
            Reason::InvalidInputRef
        );
    }
}
