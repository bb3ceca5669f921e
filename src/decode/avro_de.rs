//! A serde `Deserializer` over an Avro [`Value`], so that Avro and JSON records deserialize into the
//! same wire structs.
//!
//! apache-avro has its own (`apache_avro::from_value`), but it only maps unions to `Option`, so a
//! required (non-union) field could not land in the `Option` our wire structs use to report
//! `missing_field`. Here any non-null value deserializes as `Some`.

use apache_avro::types::Value;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use std::fmt;

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Deserializes `T` from a decoded Avro value.
///
/// # Errors
/// The value's shape does not match `T` (wrong type for a field).
pub fn from_value<'a, T: serde::Deserialize<'a>>(value: &'a Value) -> Result<T, Error> {
    T::deserialize(De(value))
}

#[derive(Clone, Copy)]
struct De<'a>(&'a Value);

impl<'a> IntoDeserializer<'a, Error> for De<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Boolean(b) => v.visit_bool(*b),
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => v.visit_i32(*i),
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i) => v.visit_i64(*i),
            Value::Float(f) => v.visit_f32(*f),
            Value::Double(f) => v.visit_f64(*f),
            Value::String(s) | Value::Enum(_, s) => v.visit_borrowed_str(s),
            Value::Bytes(b) | Value::Fixed(_, b) => v.visit_borrowed_bytes(b),
            Value::Union(_, inner) => De(inner).deserialize_any(v),
            Value::Array(items) => v.visit_seq(Seq(items.iter())),
            Value::Record(fields) => v.visit_map(Fields {
                iter: fields.iter(),
                pending: None,
            }),
            Value::Map(m) => v.visit_map(Entries {
                iter: m.iter(),
                pending: None,
            }),
            other => Err(Error(format!("unsupported Avro value {other:?}"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_none(),
            Value::Union(_, inner) if matches!(**inner, Value::Null) => v.visit_none(),
            Value::Union(_, inner) => v.visit_some(De(inner)),
            _ => v.visit_some(self),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Seq<I>(I);

impl<'de, I: Iterator<Item = &'de Value>> SeqAccess<'de> for Seq<I> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(De(v))).transpose()
    }
}

/// Record fields and map entries both hand out a key, then its value.
struct Fields<'de, I> {
    iter: I,
    pending: Option<&'de Value>,
}

type Entries<'de, I> = Fields<'de, I>;

trait Entry<'de> {
    fn split(self) -> (&'de str, &'de Value);
}

impl<'de> Entry<'de> for &'de (String, Value) {
    fn split(self) -> (&'de str, &'de Value) {
        (&self.0, &self.1)
    }
}

impl<'de> Entry<'de> for (&'de String, &'de Value) {
    fn split(self) -> (&'de str, &'de Value) {
        (self.0, self.1)
    }
}

impl<'de, E: Entry<'de>, I: Iterator<Item = E>> MapAccess<'de> for Fields<'de, I> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some(e) => {
                let (k, v) = e.split();
                self.pending = Some(v);
                seed.deserialize(de::value::BorrowedStrDeserializer::new(k))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .pending
            .take()
            .ok_or_else(|| Error("value requested before key".into()))?;
        seed.deserialize(De(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct W {
        a: Option<String>,
        b: Option<f64>,
        c: Option<i64>,
        d: Option<Vec<i64>>,
    }

    #[test]
    fn required_and_union_fields_become_options() {
        let v = Value::Record(vec![
            ("a".into(), Value::String("x".into())),
            ("b".into(), Value::Union(1, Box::new(Value::Double(1.5)))),
            ("c".into(), Value::Union(0, Box::new(Value::Null))),
            (
                "d".into(),
                Value::Array(vec![Value::Long(1), Value::Int(2)]),
            ),
            ("extra".into(), Value::Boolean(true)),
        ]);
        let w: W = from_value(&v).unwrap();
        assert_eq!(
            w,
            W {
                a: Some("x".into()),
                b: Some(1.5),
                c: None,
                d: Some(vec![1, 2])
            }
        );
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let v = Value::Record(vec![("b".into(), Value::String("x".into()))]);
        assert!(from_value::<W>(&v).is_err());
        assert!(from_value::<W>(&Value::Long(3)).is_err());
    }
}
