//! Wire forms shared by several families: timestamps and dates as JSON and Avro send them.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A timestamp as sent: an integer (epoch milliseconds in JSON, microseconds in Avro's
/// `timestamp-micros`) or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq)]
pub enum WireTime {
    Int(i64),
    Text(String),
}

/// A calendar date as sent: days since 1970-01-01 (Avro `date`) or `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq)]
pub enum WireDate {
    Days(i64),
    Text(String),
}

struct IntOrText<T>(fn(i64) -> T, fn(String) -> T, &'static str);

impl<T> Visitor<'_> for IntOrText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.2)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok((self.0)(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        i64::try_from(v)
            .map(self.0)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.1)(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok((self.1)(v))
    }
}

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrText(
            WireTime::Int,
            WireTime::Text,
            "an RFC 3339 timestamp string or an integer epoch time",
        ))
    }
}

impl<'de> Deserialize<'de> for WireDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrText(
            WireDate::Days,
            WireDate::Text,
            "a YYYY-MM-DD date string or an integer count of days since 1970-01-01",
        ))
    }
}
