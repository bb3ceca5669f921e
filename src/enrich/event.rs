//! One enrichment event: a committed row (with its entity set, for articles and posts) as a
//! message, its deterministic id, and the Avro contract it follows.
//!
//! Rows are read back typed (binary protocol) per the family's [`Table`] declaration, so every
//! column of the COPY contract is in the event, and the Avro schema is derived from the same
//! declaration ([`event_schema`]); `schemas/events/<family>.avsc` holds it for model teams, and
//! a test keeps the files equal to what the code derives.

use crate::config::EventFormat;
use crate::sink::copy::Table;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

/// Bumped when the event's shape changes incompatibly; carried in every event and header.
pub const SCHEMA_VERSION: i32 = 1;

/// Lineage columns: in the event's `lineage`, not in its `record`.
const LINEAGE: [&str; 3] = ["source_topic", "source_partition", "source_offset"];

/// One typed column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i32),
    Long(i64),
    Double(f64),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Uuid(uuid::Uuid),
    Json(Value),
    Doubles(Vec<Option<f64>>),
    Texts(Vec<Option<String>>),
}

/// Reads column `i` of `row`, declared as `ty`.
///
/// # Errors
/// The column's type is not the declared one (a schema drift: a build defect).
pub fn cell(row: &Row, i: usize, ty: &Type) -> Result<Cell, tokio_postgres::Error> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
        v.map_or(Cell::Null, f)
    }
    Ok(match *ty {
        Type::TEXT | Type::BPCHAR | Type::VARCHAR => or_null(row.try_get(i)?, Cell::Text),
        Type::INT2 => or_null(row.try_get::<_, Option<i16>>(i)?, |v| Cell::Int(v.into())),
        Type::INT4 => or_null(row.try_get(i)?, Cell::Int),
        Type::INT8 => or_null(row.try_get(i)?, Cell::Long),
        Type::FLOAT8 => or_null(row.try_get(i)?, Cell::Double),
        Type::TIMESTAMPTZ => or_null(row.try_get(i)?, Cell::Timestamp),
        Type::DATE => or_null(row.try_get(i)?, Cell::Date),
        Type::UUID => or_null(row.try_get(i)?, Cell::Uuid),
        Type::JSONB | Type::JSON => or_null(row.try_get(i)?, Cell::Json),
        Type::FLOAT8_ARRAY => or_null(row.try_get(i)?, Cell::Doubles),
        Type::TEXT_ARRAY => or_null(row.try_get(i)?, Cell::Texts),
        _ => or_null(row.try_get(i)?, Cell::Text),
    })
}

/// The columns of `table` that go into an event's `record` (all but lineage), with their types.
pub fn record_columns(table: &Table) -> impl Iterator<Item = (&'static str, &'static Type)> {
    table
        .columns
        .iter()
        .zip(table.types.iter())
        .filter(|(c, _)| !LINEAGE.contains(c))
        .map(|(c, t)| (*c, t))
}

/// A committed row, read back for its event.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Values of [`record_columns`], in order.
    pub cells: Vec<Cell>,
    pub partition: i32,
    pub offset: i64,
    /// Entity rows (their [`record_columns`] minus the parent's key), for articles and posts.
    pub entities: Vec<Vec<Cell>>,
}

/// Where and when a row was committed: the batch's coordinates.
#[derive(Debug, Clone, Copy)]
pub struct BatchRef {
    pub id: i64,
    pub first_offset: i64,
    pub committed_at: DateTime<Utc>,
}

/// The deterministic id of the event of a row: its source coordinates and the batch that wrote
/// it (a recreated topic reuses offsets; the batch tells its rows apart). Kafka topic names cannot
/// contain ':', so the id splits unambiguously from the right.
pub fn event_id(topic: &str, partition: i32, offset: i64, batch: i64) -> String {
    format!("{topic}:{partition}:{offset}:{batch}")
}

/// An event ready to produce.
#[derive(Debug)]
pub struct Event {
    pub id: String,
    /// The natural key as a JSON object (the message key: one key, one partition, in order).
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Builds the events of one family's rows; holds what is derived once per family.
pub struct EventEncoder {
    family: &'static str,
    table: &'static Table,
    child: Option<&'static Table>,
    /// Indexes into the record's cells of the key columns.
    key_idx: Vec<usize>,
    format: EventFormat,
    /// Avro single-object header: `C3 01` + the schema's fingerprint.
    avro_header: [u8; 10],
}

impl EventEncoder {
    /// # Errors
    /// The derived schema does not parse (a build defect, caught by tests).
    pub fn new(
        family: &'static str,
        tables: &'static [&'static Table],
        format: EventFormat,
    ) -> Result<Self, apache_avro::Error> {
        let table = tables[0];
        let child = tables.get(1).copied();
        let schema = apache_avro::Schema::parse(&event_schema(family, table, child))?;
        let fp = crate::decode::fingerprint(&schema);
        let mut avro_header = [0u8; 10];
        avro_header[0] = 0xC3;
        avro_header[1] = 0x01;
        avro_header[2..].copy_from_slice(&fp);
        let cols: Vec<&str> = record_columns(table).map(|(c, _)| c).collect();
        let key_idx = table
            .key
            .iter()
            .map(|k| cols.iter().position(|c| c == k).expect("key column"))
            .collect();
        Ok(Self {
            family,
            table,
            child,
            key_idx,
            format,
            avro_header,
        })
    }

    pub fn table(&self) -> &'static Table {
        self.table
    }

    pub fn child(&self) -> Option<&'static Table> {
        self.child
    }

    /// The child's record columns that go into an entity (the parent's key is implied).
    pub fn entity_columns(&self) -> Vec<(&'static str, &'static Type)> {
        let parent_key = self.table.key;
        self.child
            .map(|c| {
                record_columns(c)
                    .filter(|(n, _)| !parent_key.contains(n))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The event of `row`, committed by `batch` from `topic`.
    #[cfg(test)]
    pub fn event(&self, topic: &str, batch: &BatchRef, row: &StoredRow) -> Event {
        let mut e = Event {
            id: String::new(),
            key: Vec::new(),
            payload: Vec::new(),
        };
        self.encode_into(topic, batch, row, &mut e);
        e
    }

    /// [`EventEncoder::event`] into `out`'s buffers, which the relay reuses for every event
    /// (librdkafka copies what it sends): no allocation per event once they have grown.
    pub fn encode_into(&self, topic: &str, batch: &BatchRef, row: &StoredRow, out: &mut Event) {
        out.id.clear();
        // topic:partition:offset:batch, without core::fmt (once per event).
        let mut num = itoa::Buffer::new();
        out.id.push_str(topic);
        out.id.push(':');
        out.id.push_str(num.format(row.partition));
        out.id.push(':');
        out.id.push_str(num.format(row.offset));
        out.id.push(':');
        out.id.push_str(num.format(batch.id));
        let key = &mut out.key;
        key.clear();
        key.push(b'{');
        for (n, (&i, k)) in self.key_idx.iter().zip(self.table.key).enumerate() {
            if n > 0 {
                key.push(b',');
            }
            serde_json::to_writer(&mut *key, k).expect("a string serializes");
            key.push(b':');
            // The same bytes as through `json_of`, without a `Value` (and a copy of the text)
            // per key column of every event.
            match &row.cells[i] {
                Cell::Text(s) => serde_json::to_writer(&mut *key, s.as_str()),
                Cell::Int(v) => serde_json::to_writer(&mut *key, v),
                Cell::Long(v) => serde_json::to_writer(&mut *key, v),
                Cell::Timestamp(t) => serde_json::to_writer(&mut *key, &rfc3339(t)),
                c => serde_json::to_writer(&mut *key, &json_of(c)),
            }
            .expect("a value serializes");
        }
        key.push(b'}');
        out.payload.clear();
        match self.format {
            EventFormat::Json => self.json(&out.id, topic, batch, row, &mut out.payload),
            EventFormat::Avro => self.avro(&out.id, topic, batch, row, &mut out.payload),
        }
    }

    fn json(&self, id: &str, topic: &str, batch: &BatchRef, row: &StoredRow, out: &mut Vec<u8>) {
        let mut record = Map::new();
        for ((name, _), c) in record_columns(self.table).zip(&row.cells) {
            record.insert(name.to_owned(), json_of(c));
        }
        if self.child.is_some() {
            let cols = self.entity_columns();
            let entities: Vec<Value> = row
                .entities
                .iter()
                .map(|e| {
                    Value::Object(
                        cols.iter()
                            .zip(e)
                            .map(|((n, _), c)| ((*n).to_owned(), json_of(c)))
                            .collect(),
                    )
                })
                .collect();
            record.insert("entities".into(), Value::Array(entities));
        }
        let key: Map<String, Value> = self
            .key_idx
            .iter()
            .zip(self.table.key)
            .map(|(&i, k)| ((*k).to_owned(), json_of(&row.cells[i])))
            .collect();
        let v = json!({
            "event_id": id,
            "family": self.family,
            "schema_version": SCHEMA_VERSION,
            "key": key,
            "record": record,
            "lineage": {"topic": topic, "partition": row.partition, "offset": row.offset},
            "batch": {"id": batch.id, "position": row.offset - batch.first_offset},
            "committed_at": rfc3339(&batch.committed_at),
        });
        serde_json::to_writer(out, &v).expect("a JSON value serializes");
    }

    fn avro(&self, id: &str, topic: &str, batch: &BatchRef, row: &StoredRow, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.avro_header);
        avro::string(out, id);
        avro::string(out, self.family);
        avro::long(out, SCHEMA_VERSION.into());
        // key: the key columns, never null.
        for &i in &self.key_idx {
            avro::cell(out, &row.cells[i]);
        }
        // record: every column, nullable but the key's.
        let key_cols = self.table.key;
        for ((name, _), c) in record_columns(self.table).zip(&row.cells) {
            if key_cols.contains(&name) {
                avro::cell(out, c);
            } else {
                avro::nullable(out, c);
            }
        }
        if self.child.is_some() {
            let cols = self.entity_columns();
            if !row.entities.is_empty() {
                avro::long(out, row.entities.len() as i64);
                for e in &row.entities {
                    for ((name, _), c) in cols.iter().zip(e) {
                        if self.child.is_some_and(|t| t.key.contains(name)) {
                            avro::cell(out, c);
                        } else {
                            avro::nullable(out, c);
                        }
                    }
                }
            }
            avro::long(out, 0);
        }
        avro::string(out, topic);
        avro::long(out, row.partition.into());
        avro::long(out, row.offset);
        avro::long(out, batch.id);
        avro::long(out, row.offset - batch.first_offset);
        avro::long(out, batch.committed_at.timestamp_micros());
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn json_of(c: &Cell) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Text(s) => Value::String(s.clone()),
        Cell::Int(v) => (*v).into(),
        Cell::Long(v) => (*v).into(),
        Cell::Double(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Cell::Timestamp(t) => Value::String(rfc3339(t)),
        Cell::Date(d) => Value::String(d.to_string()),
        Cell::Uuid(u) => Value::String(u.to_string()),
        Cell::Json(v) => v.clone(),
        Cell::Doubles(v) => Value::Array(
            v.iter()
                .map(|x| {
                    x.and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                })
                .collect(),
        ),
        Cell::Texts(v) => Value::Array(
            v.iter()
                .map(|x| x.clone().map_or(Value::Null, Value::String))
                .collect(),
        ),
    }
}

/// Avro binary encoding of the types events use (the spec's "Binary Encoding"), written directly:
/// events are built at ingest rate and the layout is fixed by [`event_schema`].
mod avro {
    use super::Cell;

    pub fn long(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    pub fn string(out: &mut Vec<u8>, s: &str) {
        long(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    /// A value of a `["null", T]` union.
    pub fn nullable(out: &mut Vec<u8>, c: &Cell) {
        if matches!(c, Cell::Null) {
            long(out, 0);
        } else {
            long(out, 1);
            cell(out, c);
        }
    }

    pub fn cell(out: &mut Vec<u8>, c: &Cell) {
        match c {
            Cell::Null => {}
            Cell::Text(s) => string(out, s),
            Cell::Int(v) => long(out, (*v).into()),
            Cell::Long(v) => long(out, *v),
            Cell::Double(v) => out.extend_from_slice(&v.to_le_bytes()),
            Cell::Timestamp(t) => long(out, t.timestamp_micros()),
            Cell::Date(d) => long(
                out,
                (*d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days(),
            ),
            Cell::Uuid(u) => string(out, &u.to_string()),
            Cell::Json(v) => string(out, &v.to_string()),
            Cell::Doubles(v) => {
                if !v.is_empty() {
                    long(out, v.len() as i64);
                    for x in v {
                        nullable(out, &x.map_or(Cell::Null, Cell::Double));
                    }
                }
                long(out, 0);
            }
            Cell::Texts(v) => {
                if !v.is_empty() {
                    long(out, v.len() as i64);
                    for x in v {
                        nullable(out, &x.clone().map_or(Cell::Null, Cell::Text));
                    }
                }
                long(out, 0);
            }
        }
    }
}

/// The Avro type of a column.
fn avro_type(ty: &Type) -> Value {
    match *ty {
        Type::INT2 | Type::INT4 => json!("int"),
        Type::INT8 => json!("long"),
        Type::FLOAT8 => json!("double"),
        Type::TIMESTAMPTZ => json!({"type": "long", "logicalType": "timestamp-micros"}),
        Type::DATE => json!({"type": "int", "logicalType": "date"}),
        Type::UUID => json!({"type": "string", "logicalType": "uuid"}),
        Type::FLOAT8_ARRAY => json!({"type": "array", "items": ["null", "double"]}),
        Type::TEXT_ARRAY => json!({"type": "array", "items": ["null", "string"]}),
        // jsonb travels as its JSON text.
        _ => json!("string"),
    }
}

fn pascal(name: &str) -> String {
    name.split('_').fold(String::new(), |mut s, w| {
        let mut c = w.chars();
        if let Some(f) = c.next() {
            let _ = write!(s, "{}{}", f.to_ascii_uppercase(), c.as_str());
        }
        s
    })
}

fn field(name: &str, ty: &Type, nullable: bool) -> Value {
    if nullable {
        json!({"name": name, "type": ["null", avro_type(ty)], "default": null})
    } else {
        json!({"name": name, "type": avro_type(ty)})
    }
}

/// The Avro schema of a family's events, derived from its table declarations. Non-key columns
/// are nullable in the schema (the table's NOT NULL constraints say which never are null).
pub fn event_schema(family: &str, table: &Table, child: Option<&Table>) -> Value {
    let p = pascal(family);
    // In the key's order (the primary key's), as the encoder writes them.
    let key_fields: Vec<Value> = table
        .key
        .iter()
        .filter_map(|k| record_columns(table).find(|(c, _)| c == k))
        .map(|(c, t)| field(c, t, false))
        .collect();
    let mut record_fields: Vec<Value> = record_columns(table)
        .map(|(c, t)| field(c, t, !table.key.contains(&c)))
        .collect();
    if let Some(child) = child {
        let entity_fields: Vec<Value> = record_columns(child)
            .filter(|(c, _)| !table.key.contains(c))
            .map(|(c, t)| field(c, t, !child.key.contains(&c)))
            .collect();
        record_fields.push(json!({
            "name": "entities",
            "type": {"type": "array", "items": {
                "type": "record", "name": format!("{}Entity", p), "fields": entity_fields}},
            "doc": "The entity set of this version, in the database's order."
        }));
    }
    json!({
        "type": "record",
        "name": format!("{p}Event"),
        "namespace": "io.esurio.events",
        "doc": format!("A committed {family} row, published after its batch's transaction committed (docs/ARCHITECTURE.md, \"Enrichment events\")."),
        "fields": [
            {"name": "event_id", "type": "string",
             "doc": "topic:partition:offset:batch_id; the same committed row always has the same id: drop repeats by it."},
            {"name": "family", "type": "string"},
            {"name": "schema_version", "type": "int"},
            {"name": "key", "type": {"type": "record", "name": format!("{p}Key"), "fields": key_fields},
             "doc": "The row's natural key (the message key is the same, as a JSON object)."},
            {"name": "record", "type": {"type": "record", "name": format!("{p}Record"), "fields": record_fields},
             "doc": "The row as stored: normalized values, every column of the table but lineage."},
            {"name": "lineage", "type": {"type": "record", "name": "Lineage", "fields": [
                {"name": "topic", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "offset", "type": "long"}]},
             "doc": "The Kafka record the row came from."},
            {"name": "batch", "type": {"type": "record", "name": "BatchPosition", "fields": [
                {"name": "id", "type": "long"},
                {"name": "position", "type": "long"}]},
             "doc": "ingest_batches.id of the batch that wrote the row, and the record's offset from the batch's first."},
            {"name": "committed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as Avro;

    fn schema_text(spec: &crate::records::FamilySpec) -> String {
        let v = event_schema(spec.name, spec.tables[0], spec.tables.get(1).copied());
        serde_json::to_string_pretty(&v).unwrap() + "\n"
    }

    /// schemas/events/<family>.avsc is the contract model teams read: it must be what the code
    /// derives. `ESURIO_WRITE_SCHEMAS=1 cargo test --lib enrich` rewrites the files.
    #[test]
    fn the_event_schema_files_are_what_the_code_derives() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/events");
        let write = std::env::var_os("ESURIO_WRITE_SCHEMAS").is_some();
        for spec in crate::records::FAMILIES
            .iter()
            .filter(|f| !f.tables.is_empty())
        {
            let text = schema_text(spec);
            apache_avro::Schema::parse_str(&text).unwrap();
            let path = dir.join(format!("{}.avsc", spec.name));
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                on_disk,
                text,
                "{} is stale: run ESURIO_WRITE_SCHEMAS=1 cargo test --lib enrich",
                path.display()
            );
        }
    }

    fn article_row() -> (StoredRow, BatchRef) {
        let spec = crate::records::family("news_article").unwrap();
        let cells = record_columns(spec.tables[0])
            .map(|(c, t)| match (c, t.clone()) {
                ("article_id", _) => Cell::Uuid(uuid::Uuid::nil()),
                ("author", _) => Cell::Null,
                (_, Type::TIMESTAMPTZ) => Cell::Timestamp(
                    DateTime::parse_from_rfc3339("2026-12-01T10:00:00.5Z")
                        .unwrap()
                        .into(),
                ),
                (c, _) => Cell::Text(format!("{c} é")),
            })
            .collect();
        let entity = EventEncoder::new("news_article", spec.tables, EventFormat::Avro)
            .unwrap()
            .entity_columns()
            .iter()
            .map(|(c, t)| match *t {
                &Type::FLOAT8 => Cell::Double(0.25),
                _ => Cell::Text((*c).to_owned()),
            })
            .collect();
        (
            StoredRow {
                cells,
                partition: 2,
                offset: 1234,
                entities: vec![entity],
            },
            BatchRef {
                id: 57,
                first_offset: 1200,
                committed_at: DateTime::parse_from_rfc3339("2026-12-01T10:00:01Z")
                    .unwrap()
                    .into(),
            },
        )
    }

    #[test]
    fn an_avro_event_decodes_with_its_schema_and_says_what_the_json_says() {
        let spec = crate::records::family("news_article").unwrap();
        let (row, batch) = article_row();
        let avro = EventEncoder::new("news_article", spec.tables, EventFormat::Avro).unwrap();
        let e = avro.event("t.news", &batch, &row);
        assert_eq!(e.id, "t.news:2:1234:57");
        let schema = apache_avro::Schema::parse_str(&schema_text(spec)).unwrap();
        assert_eq!(&e.payload[..2], &[0xC3, 0x01]);
        assert_eq!(&e.payload[2..10], &crate::decode::fingerprint(&schema));
        let mut body = &e.payload[10..];
        let v = apache_avro::from_avro_datum(&schema, &mut body, None).unwrap();
        assert!(body.is_empty(), "every byte is read");
        let Avro::Record(fields) = v else { panic!() };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("event_id"), Avro::String("t.news:2:1234:57".into()));
        let Avro::Record(batch_f) = get("batch") else {
            panic!()
        };
        assert_eq!(batch_f[1].1, Avro::Long(34), "position in the batch");
        let Avro::Record(rec) = get("record") else {
            panic!()
        };
        let author = rec.iter().find(|(k, _)| k == "author").unwrap();
        assert_eq!(author.1, Avro::Union(0, Box::new(Avro::Null)));
        let entities = rec.iter().find(|(k, _)| k == "entities").unwrap();
        let Avro::Array(items) = &entities.1 else {
            panic!()
        };
        assert_eq!(items.len(), 1);

        let json = EventEncoder::new("news_article", spec.tables, EventFormat::Json).unwrap();
        let j: Value = serde_json::from_slice(&json.event("t.news", &batch, &row).payload).unwrap();
        assert_eq!(j["event_id"], "t.news:2:1234:57");
        assert_eq!(j["key"]["article_id"], uuid::Uuid::nil().to_string());
        assert_eq!(j["record"]["published_at"], "2026-12-01T10:00:00.500000Z");
        assert_eq!(j["record"]["author"], Value::Null);
        assert_eq!(j["record"]["entities"][0]["salience"], 0.25);
        assert_eq!(j["lineage"]["offset"], 1234);
        assert_eq!(j["batch"]["position"], 34);
        assert_eq!(
            e.key,
            br#"{"article_id":"00000000-0000-0000-0000-000000000000"}"#
        );
    }

    #[test]
    fn the_message_key_is_the_key_columns_as_json() {
        let spec = crate::records::family("market_data").unwrap();
        let enc = EventEncoder::new(spec.name, spec.tables, EventFormat::Avro).unwrap();
        let ts: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.25Z")
            .unwrap()
            .into();
        let cells = record_columns(spec.tables[0])
            .map(|(c, t)| match *t {
                Type::TIMESTAMPTZ => Cell::Timestamp(ts),
                Type::FLOAT8 => Cell::Double(1.0),
                _ => Cell::Text(format!("{c}\"\u{e9}")),
            })
            .collect();
        let row = StoredRow {
            cells,
            partition: 0,
            offset: 1,
            entities: Vec::new(),
        };
        let batch = BatchRef {
            id: 1,
            first_offset: 0,
            committed_at: ts,
        };
        let e = enc.event("md", &batch, &row);
        let want = json!({"exchange": "exchange\"\u{e9}", "symbol": "symbol\"\u{e9}",
                          "ts": "2026-12-01T10:00:00.250000Z"});
        let got: Value = serde_json::from_slice(&e.key).unwrap();
        assert_eq!(got, want);
        assert!(
            e.key.starts_with(br#"{"exchange":"#),
            "in the key's column order"
        );
    }

    #[test]
    fn every_family_encodes_a_row_its_schema_accepts() {
        for spec in crate::records::FAMILIES
            .iter()
            .filter(|f| !f.tables.is_empty())
        {
            let enc = EventEncoder::new(spec.name, spec.tables, EventFormat::Avro).unwrap();
            let cells: Vec<Cell> = record_columns(spec.tables[0])
                .map(|(_, t)| match *t {
                    Type::INT2 | Type::INT4 => Cell::Int(3),
                    Type::INT8 => Cell::Long(-3),
                    Type::FLOAT8 => Cell::Double(1.5),
                    Type::TIMESTAMPTZ => Cell::Timestamp(DateTime::UNIX_EPOCH),
                    Type::DATE => Cell::Date(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
                    Type::UUID => Cell::Uuid(uuid::Uuid::nil()),
                    Type::JSONB => Cell::Json(json!({"a": 1})),
                    Type::FLOAT8_ARRAY => Cell::Doubles(vec![Some(1.0), None]),
                    Type::TEXT_ARRAY => Cell::Texts(vec![Some("a:0:1:2".into()), None]),
                    _ => Cell::Text("x".into()),
                })
                .collect();
            let row = StoredRow {
                cells,
                partition: 0,
                offset: 9,
                entities: Vec::new(),
            };
            let batch = BatchRef {
                id: 1,
                first_offset: 0,
                committed_at: DateTime::UNIX_EPOCH,
            };
            let e = enc.event(spec.name, &batch, &row);
            let schema = apache_avro::Schema::parse_str(&schema_text(spec)).unwrap();
            let mut body = &e.payload[10..];
            apache_avro::from_avro_datum(&schema, &mut body, None)
                .unwrap_or_else(|err| panic!("{}: {err}", spec.name));
            assert!(body.is_empty(), "{}", spec.name);
        }
    }
}
