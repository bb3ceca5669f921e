//! A record as the simulator describes it before encoding: one tree that serializes both to JSON
//! (serde) and to an Avro [`Value`](apache_avro::types::Value) matching `schemas/<family>.avsc`.
//!
//! The tree keeps what the two encodings need and JSON alone cannot say: which fields are Avro unions
//! (`Opt`), Avro `int` versus `long`, and how a timestamp is spelled in JSON.

use apache_avro::types::Value as Avro;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// How a timestamp is written in JSON (Avro always carries `timestamp-micros`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsStyle {
    /// RFC 3339 in UTC with microseconds: `2024-05-01T00:00:00.123456Z`.
    Utc,
    /// RFC 3339 with this UTC offset in seconds, e.g. `-04:00` (the validator converts to UTC).
    Offset(i32),
    /// Epoch milliseconds (an integer). Only used where sub-millisecond precision does not matter.
    Millis,
}

/// One value of a simulated record.
#[derive(Debug, Clone)]
pub enum V {
    Str(String),
    F64(f64),
    /// Avro `int`.
    Int(i32),
    /// Avro `long`.
    Long(i64),
    /// A timestamp in epoch microseconds.
    Ts(i64, TsStyle),
    /// A timestamp no parser accepts: this text in JSON, `i64::MAX` microseconds in Avro.
    BadTs(&'static str),
    /// A date as days since 1970-01-01.
    Date(i32),
    /// A date no parser accepts: this text in JSON, `i32::MAX` days in Avro.
    BadDate(&'static str),
    Arr(Vec<V>),
    Rec(Rec),
    /// An Avro `["null", T]` union; JSON `null` or the value.
    Opt(Option<Box<V>>),
    /// A JSON value: embedded as is in JSON, its text as an Avro string.
    Json(serde_json::Value),
}

impl V {
    pub fn s(s: impl Into<String>) -> V {
        V::Str(s.into())
    }

    pub fn some(v: V) -> V {
        V::Opt(Some(Box::new(v)))
    }

    pub fn none() -> V {
        V::Opt(None)
    }

    pub fn opt(v: Option<V>) -> V {
        V::Opt(v.map(Box::new))
    }

    /// The value inside an `Opt`, or the value itself.
    pub fn inner(&self) -> Option<&V> {
        match self {
            V::Opt(o) => o.as_deref(),
            v => Some(v),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.inner()? {
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.inner()? {
            V::F64(x) => Some(*x),
            _ => None,
        }
    }

    /// The Avro value for this tree (unions as `Union(0, Null)` / `Union(1, v)`).
    pub fn to_avro(&self) -> Avro {
        match self {
            V::Str(s) => Avro::String(s.clone()),
            V::F64(x) => Avro::Double(*x),
            V::Int(x) => Avro::Int(*x),
            V::Long(x) => Avro::Long(*x),
            V::Ts(m, _) => Avro::TimestampMicros(*m),
            V::BadTs(_) => Avro::TimestampMicros(i64::MAX),
            V::Date(d) => Avro::Date(*d),
            V::BadDate(_) => Avro::Date(i32::MAX),
            V::Arr(items) => Avro::Array(items.iter().map(V::to_avro).collect()),
            V::Rec(r) => r.to_avro(),
            V::Opt(None) => Avro::Union(0, Box::new(Avro::Null)),
            V::Opt(Some(v)) => Avro::Union(1, Box::new(v.to_avro())),
            V::Json(j) => Avro::String(j.to_string()),
        }
    }
}

/// A record: named fields in wire order.
#[derive(Debug, Clone, Default)]
pub struct Rec(pub Vec<(&'static str, V)>);

impl Rec {
    pub fn with_capacity(n: usize) -> Self {
        Rec(Vec::with_capacity(n))
    }

    pub fn put(&mut self, name: &'static str, v: V) -> &mut Self {
        self.0.push((name, v));
        self
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Replaces a field's value; an optional (union) field stays a union holding `v`.
    pub fn set(&mut self, name: &'static str, v: V) {
        match self.get_mut(name) {
            Some(slot @ V::Opt(_)) => {
                *slot = match v {
                    V::Opt(_) => v,
                    v => V::some(v),
                }
            }
            Some(slot) => *slot = v,
            None => self.0.push((name, v)),
        }
    }

    /// Replaces a field's value exactly as given (no union wrapping): for JSON-only defects.
    pub fn replace(&mut self, name: &'static str, v: V) {
        match self.get_mut(name) {
            Some(slot) => *slot = v,
            None => self.0.push((name, v)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| *k != name);
    }

    pub fn to_avro(&self) -> Avro {
        Avro::Record(
            self.0
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_avro()))
                .collect(),
        )
    }
}

/// RFC 3339 text of an epoch-microsecond instant at a UTC offset (0 = `Z`).
pub fn rfc3339(micros: i64, offset_secs: i32) -> Option<String> {
    let t = DateTime::from_timestamp_micros(micros)?;
    let off = FixedOffset::east_opt(offset_secs)?;
    Some(
        t.with_timezone(&off)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

impl Serialize for V {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            V::Opt(None) => s.serialize_none(),
            V::Str(x) => s.serialize_str(x),
            V::F64(x) => s.serialize_f64(*x),
            V::Int(x) => s.serialize_i32(*x),
            V::Long(x) => s.serialize_i64(*x),
            V::Ts(m, style) => {
                let text = match style {
                    TsStyle::Millis => None,
                    TsStyle::Utc => rfc3339(*m, 0),
                    TsStyle::Offset(o) => rfc3339(*m, *o),
                };
                match text {
                    Some(t) => s.serialize_str(&t),
                    None => s.serialize_i64(m.div_euclid(1000)),
                }
            }
            V::BadTs(t) | V::BadDate(t) => s.serialize_str(t),
            V::Date(d) => {
                let date = NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(*d))));
                match date {
                    Some(date) => s.collect_str(&date.format("%Y-%m-%d")),
                    None => s.serialize_i32(*d),
                }
            }
            V::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            V::Rec(r) => r.serialize(s),
            V::Opt(Some(v)) => v.serialize(s),
            V::Json(j) => j.serialize(s),
        }
    }
}

impl Serialize for Rec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_unions_encode_both_ways() {
        let mut r = Rec::default();
        r.put("ts", V::Ts(1_700_000_000_123_456, TsStyle::Utc))
            .put(
                "local",
                V::Ts(1_700_000_000_123_456, TsStyle::Offset(-4 * 3600)),
            )
            .put("ms", V::Ts(1_700_000_000_123_000, TsStyle::Millis))
            .put("bid", V::none())
            .put("d", V::Date(19_000));
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"ts":"2023-11-14T22:13:20.123456Z","local":"2023-11-14T18:13:20.123456-04:00","ms":1700000000123,"bid":null,"d":"2022-01-08"}"#
        );
        r.set("bid", V::F64(1.5));
        assert!(matches!(r.get("bid"), Some(V::Opt(Some(_)))));
        match r.to_avro() {
            Avro::Record(f) => assert_eq!(f[3].1, Avro::Union(1, Box::new(Avro::Double(1.5)))),
            other => panic!("{other:?}"),
        }
    }
}
