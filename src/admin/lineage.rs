//! `esurio lineage <family> <key>`: from a result (signal, insight, feature...) back through what it
//! was computed from to the ticks and articles behind it, as a tree or as JSON.
//!
//! A row names its inputs in `inputs` (results) or `sentiment_inputs` (an article or post whose
//! sentiment a model wrote back): enrichment event ids `topic:partition:offset:batch`, or
//! `batch:<id>` for a whole batch. An event id resolves to the row written from that Kafka position
//! (current, or kept in `<table>_history` if it was revised or deleted since); a signal also links to
//! its strategy version. The walk repeats on each resolved row until it reaches rows without inputs,
//! a depth bound, or a row it has already shown (so cycles and shared inputs end there).
//!
//! Each step is one statement of `sql/lineage/` per table, for all of a node's inputs at once; the
//! single recursive query that does the same walk in psql is in docs/LINEAGE.md.

use crate::config::Settings;
use crate::records::{FamilySpec, Policy};
use crate::sink::copy::Table;
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use tokio_postgres::Client;

const ROW_BY_KEY: &str = include_str!("../../sql/lineage/row_by_key.sql");
const HISTORY_BY_KEY: &str = include_str!("../../sql/lineage/history_by_key.sql");
const ROWS_BY_EVENT: &str = include_str!("../../sql/lineage/rows_by_event.sql");
const ROWS_BY_POSITION: &str = include_str!("../../sql/lineage/rows_by_position.sql");
const BATCHES: &str = include_str!("../../sql/lineage/batches.sql");

/// `esurio lineage --help`: what it walks, and how a key is written.
pub const LONG_ABOUT: &str = "\
Show what a row was computed from: its inputs, their inputs, down to the ticks and articles.

Results written back by model services (feature, insight, strategy, signal) and model updates of
articles and posts (sentiment) name their inputs: enrichment event ids topic:partition:offset:batch
(the Kafka record a row was written from, and the batch that wrote it) or batch:<id>. This command
resolves each input to its row, current or kept in <table>_history (revised or deleted since), and
repeats on that row. A signal also links to its strategy version.

FAMILY is a table name (signal, insight, feature, strategy, news_article, market_data, ...). KEY is
the row's natural key: plain text for a one-column key (an insight_id, an article_id), otherwise a
JSON object of the key columns (quote it for the shell):

  esurio lineage insight 'regime:AAPL:2026-12-02T13:00:00.000000Z'
  esurio lineage feature '{\"entity\": \"AAPL\", \"name\": \"sma_20\", \"ts\": \"2026-12-02T13:00:00Z\", \"model_version\": \"1\"}'
  esurio lineage signal '{\"strategy_id\": \"mom\", \"strategy_version\": 1, \"symbol\": \"AAPL\", \"ts\": \"2026-12-02T13:00:00Z\"}'
  esurio lineage news_article 6f1c2a4e-0d5b-5f6e-9a51-2b7c7e0c9d11 --json

Each line of the tree is a row: family, key, @lineage (the source topic:partition:offset it was
written from), model and version where the row has them, and its state if it is no longer current.
An input that resolves to nothing is shown as missing (its row was never written, or its topic was
recreated); a row already shown higher up is marked (shown above) and not expanded again.";

/// `esurio lineage` (the help text is [`LONG_ABOUT`]).
#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// A table name: signal, insight, feature, strategy, news_article, market_data, ...
    family: String,
    /// The natural key: plain text for one-column keys, else a JSON object of the key columns.
    key: String,
    /// Print the tree as JSON (one object; each node's `children` are its resolved inputs).
    #[arg(long)]
    json: bool,
    /// How many steps to walk back from the row (deeper inputs are listed, not resolved).
    #[arg(long, default_value_t = 8, value_name = "N")]
    depth: usize,
}

/// A table a lineage step can read: the table, and whether it keeps versions in a history table.
#[derive(Debug, Clone, Copy)]
struct Target {
    table: &'static Table,
    history: bool,
}

impl Target {
    fn of(spec: &'static FamilySpec, table: &'static Table) -> Self {
        Target {
            table,
            history: spec.policy == Policy::Revise,
        }
    }

    /// Every table by name: the families' tables and their entity tables.
    fn find(name: &str) -> Option<Self> {
        crate::records::FAMILIES.iter().find_map(|spec| {
            spec.tables
                .iter()
                .find(|t| t.name == name)
                .map(|t| Target::of(spec, t))
        })
    }

    fn names() -> Vec<&'static str> {
        crate::records::all_tables().map(|t| t.name).collect()
    }

    /// `template` with its placeholders filled: identifiers are quoted, and come from the static
    /// table list only.
    fn sql(&self, template: &str, history: bool) -> String {
        let table = quote(self.table.name);
        let hist = quote(&format!("{}_history", self.table.name));
        let key_match = self
            .table
            .key
            .iter()
            .map(|k| format!("t.{0} = k.{0}", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        template
            .replace(
                "{history_reason}",
                if history {
                    "t.history_reason"
                } else {
                    "NULL::text"
                },
            )
            .replace("{history}", &hist)
            .replace("{source}", if history { &hist } else { &table })
            .replace("{table}", &table)
            .replace("{key_match}", &key_match)
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// What an input names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InputRef {
    /// An enrichment event: the record at topic/partition/offset, written by batch `batch`.
    Event {
        topic: String,
        partition: i32,
        offset: i64,
        batch: i64,
    },
    /// A whole batch (`batch:<id>`).
    Batch(i64),
}

/// Parses `topic:partition:offset:batch` (topic names cannot contain ':', so splitting from the
/// right is unambiguous) or `batch:<id>`; `None` if it is neither.
fn parse_ref(s: &str) -> Option<InputRef> {
    if let Some(id) = s.strip_prefix("batch:") {
        return id.parse().ok().filter(|n| *n >= 0).map(InputRef::Batch);
    }
    let mut it = s.rsplitn(4, ':');
    let batch: i64 = it.next()?.parse().ok()?;
    let offset: i64 = it.next()?.parse().ok()?;
    let partition: i32 = it.next()?.parse().ok()?;
    let topic = it.next()?;
    if topic.is_empty() || batch < 0 || offset < 0 || partition < 0 {
        return None;
    }
    Some(InputRef::Event {
        topic: topic.to_owned(),
        partition,
        offset,
        batch,
    })
}

/// The key argument as a JSON object of exactly the table's key columns.
///
/// # Errors
/// Text that is neither a JSON object nor usable as the one key column, a missing or unknown
/// column, or a value that is not a string or number.
fn parse_key(table: &Table, text: &str) -> anyhow::Result<Map<String, Value>> {
    let cols = table.key.join(", ");
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        if table.key.len() == 1 {
            if trimmed.is_empty() {
                bail!("malformed key: empty (the key of {} is {cols})", table.name);
            }
            let mut m = Map::new();
            m.insert(table.key[0].to_owned(), Value::String(trimmed.to_owned()));
            return Ok(m);
        }
        bail!(
            "malformed key {text:?}: the key of {} has {} columns ({cols}); give it as a JSON object, e.g. '{}'",
            table.name,
            table.key.len(),
            example_key(table)
        );
    }
    let v: Value = serde_json::from_str(trimmed).with_context(|| {
        format!(
            "malformed key: not valid JSON (the key of {} is {cols})",
            table.name
        )
    })?;
    let Value::Object(m) = v else {
        bail!("malformed key: not a JSON object");
    };
    let missing: Vec<&str> = table
        .key
        .iter()
        .copied()
        .filter(|k| !m.contains_key(*k))
        .collect();
    let unknown: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !table.key.contains(k))
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        bail!(
            "malformed key: the key of {} is {cols} (missing: {}; not key columns: {})",
            table.name,
            if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            },
            if unknown.is_empty() {
                "none".into()
            } else {
                unknown.join(", ")
            },
        );
    }
    for (k, v) in &m {
        if !(v.is_string() || v.is_number()) {
            bail!("malformed key: {k} must be a string or a number, not {v}");
        }
    }
    Ok(m)
}

fn example_key(table: &Table) -> String {
    let parts: Vec<String> = table.key.iter().map(|k| format!("\"{k}\": ...")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// The family whose topic this is: the configured topic name, or else the family whose name ends
/// the topic (another prefix than this configuration's).
fn family_of_topic(settings: &Settings, topic: &str) -> Option<&'static FamilySpec> {
    let families = crate::records::FAMILIES
        .iter()
        .filter(|f| !f.tables.is_empty());
    if let Some(f) = families.clone().find(|f| settings.topic(f.name) == topic) {
        return Some(f);
    }
    families
        .filter(|f| topic.ends_with(f.name))
        .max_by_key(|f| f.name.len())
}

/// Where a row came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
struct Lineage {
    topic: String,
    partition: i32,
    offset: i64,
}

impl std::fmt::Display for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.topic, self.partition, self.offset)
    }
}

/// A batch as `ingest_batches` records it.
#[derive(Debug, Clone, Serialize)]
struct BatchInfo {
    id: i64,
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    records: i32,
    rows_inserted: i32,
    committed_at: chrono::DateTime<chrono::Utc>,
    /// The `ingested_at` of every row the batch wrote.
    started_at: chrono::DateTime<chrono::Utc>,
}

/// How a node was reached and what became of it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// The row was found (current, or in history: see `state`).
    Found,
    /// Shown higher up in the tree; not expanded again (shared inputs, cycles).
    Repeat,
    /// The input names no row: never written, or its topic was recreated.
    Missing,
    /// The input is neither an event id nor `batch:<id>`, or names a topic of no family.
    Malformed,
    /// A whole batch: its audit row (its rows are not listed).
    Batch,
}

/// One row of the tree (or an input that did not resolve to one).
#[derive(Debug, Clone, Serialize)]
struct Node {
    /// The input that led here (`None` at the root).
    #[serde(rename = "ref")]
    reference: Option<String>,
    /// Which column named it: inputs, sentiment_inputs, or strategy (a signal's strategy).
    via: Option<&'static str>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Map<String, Value>>,
    /// The key columns in the table's order (the JSON map above is sorted by name).
    #[serde(skip)]
    key_columns: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    lineage: Option<Lineage>,
    /// current, or why the version left the table (revised, superseded, deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    /// The batch the input names (for an event id: the batch that wrote the row).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<BatchInfo>,
    /// Problems found on the way, e.g. an event whose position is not in its batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    /// The row as stored (JSON of its columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<Value>,
    /// The node has inputs that the depth bound left unresolved.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    children: Vec<Node>,
}

impl Node {
    fn unresolved(reference: &str, via: &'static str, status: Status, why: String) -> Self {
        Node {
            reference: Some(reference.to_owned()),
            via: Some(via),
            status,
            family: None,
            key: None,
            key_columns: &[],
            lineage: None,
            state: None,
            model: None,
            model_version: None,
            batch: None,
            warnings: vec![why],
            row: None,
            truncated: false,
            children: Vec::new(),
        }
    }

    fn found(target: Target, found: Found) -> Self {
        let row = found.row;
        let key: Map<String, Value> = target
            .table
            .key
            .iter()
            .map(|k| ((*k).to_owned(), row.get(*k).cloned().unwrap_or(Value::Null)))
            .collect();
        let text = |f: &str| row.get(f).and_then(Value::as_str).map(str::to_owned);
        let lineage = match (
            text("source_topic"),
            row.get("source_partition").and_then(Value::as_i64),
            row.get("source_offset").and_then(Value::as_i64),
        ) {
            (Some(topic), Some(p), Some(o)) => Some(Lineage {
                topic,
                partition: p as i32,
                offset: o,
            }),
            _ => None,
        };
        Node {
            reference: None,
            via: None,
            status: Status::Found,
            family: Some(target.table.name),
            key: Some(key),
            key_columns: target.table.key,
            lineage,
            state: Some(found.history_reason.unwrap_or_else(|| "current".into())),
            model: text("model").or_else(|| text("sentiment_model")),
            model_version: text("model_version").or_else(|| text("sentiment_model_version")),
            batch: None,
            warnings: Vec::new(),
            row: Some(row),
            truncated: false,
            children: Vec::new(),
        }
    }

    /// The inputs this row names, with the column that names them.
    fn inputs(&self) -> Vec<(&'static str, String)> {
        let Some(row) = &self.row else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for col in ["inputs", "sentiment_inputs"] {
            if let Some(Value::Array(a)) = row.get(col) {
                out.extend(
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|s| (col, s.to_owned())),
                );
            }
        }
        out
    }

    /// What identifies the row across the tree (for repeats and cycles).
    fn identity(&self) -> Option<String> {
        Some(format!(
            "{}|{}|{}|{}",
            self.family?,
            self.key_text(),
            self.lineage.as_ref()?,
            self.state.as_deref().unwrap_or("")
        ))
    }

    /// The key as the command takes it: the value of a one-column key, else the JSON object.
    fn key_text(&self) -> String {
        match &self.key {
            Some(k) if k.len() == 1 => match k.values().next() {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            },
            Some(k) => {
                let parts: Vec<String> = self
                    .key_columns
                    .iter()
                    .map(|c| {
                        let v = k.get(*c).unwrap_or(&Value::Null);
                        format!("{}:{v}", Value::String((*c).to_owned()))
                    })
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            None => String::new(),
        }
    }

    fn label(&self) -> String {
        let mut s = match self.status {
            Status::Found | Status::Repeat => {
                let mut s = format!("{} {}", self.family.unwrap_or("?"), self.key_text());
                if let Some(l) = &self.lineage {
                    s.push_str(&format!("  @{l}"));
                }
                if let Some(m) = &self.model {
                    s.push_str(&format!("  model {m}"));
                    if let Some(v) = &self.model_version {
                        s.push_str(&format!(" v{v}"));
                    }
                } else if let Some(v) = &self.model_version {
                    s.push_str(&format!("  model v{v}"));
                }
                if let Some(score) = self.row.as_ref().and_then(|r| r.get("sentiment_score")) {
                    if !score.is_null() {
                        s.push_str(&format!("  sentiment {score}"));
                    }
                }
                match self.state.as_deref() {
                    Some("current") | None => {}
                    Some(st) => s.push_str(&format!("  ({st})")),
                }
                if self.status == Status::Repeat {
                    s.push_str("  (shown above)");
                }
                s
            }
            Status::Batch => match &self.batch {
                Some(b) => format!(
                    "batch {}  {}[{}] offsets {}..={}  {} records, {} rows, committed {}",
                    b.id,
                    b.topic,
                    b.partition,
                    b.first_offset,
                    b.last_offset,
                    b.records,
                    b.rows_inserted,
                    b.committed_at.format("%Y-%m-%dT%H:%M:%SZ")
                ),
                None => format!(
                    "{}  (no such batch)",
                    self.reference.as_deref().unwrap_or("")
                ),
            },
            Status::Missing => format!("{}  missing", self.reference.as_deref().unwrap_or("")),
            Status::Malformed => {
                format!(
                    "{:?}  malformed input",
                    self.reference.as_deref().unwrap_or("")
                )
            }
        };
        if let (Some(via), Status::Found | Status::Repeat) = (self.via, self.status) {
            if via != "inputs" {
                s = format!("[{via}] {s}");
            }
        }
        if self.truncated {
            s.push_str(&format!(
                "  (+{} inputs beyond --depth)",
                self.inputs().len()
            ));
        }
        for w in &self.warnings {
            if self.status != Status::Found && self.status != Status::Repeat {
                s.push_str(&format!(": {w}"));
            } else {
                s.push_str(&format!("  ! {w}"));
            }
        }
        s
    }
}

/// Prints the tree with box drawing, as `tree` does.
fn render(node: &Node) -> String {
    fn walk(node: &Node, prefix: &str, out: &mut String) {
        let n = node.children.len();
        for (i, c) in node.children.iter().enumerate() {
            let last = i + 1 == n;
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&c.label());
            out.push('\n');
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(c, &deeper, out);
        }
    }
    let mut out = node.label();
    out.push('\n');
    walk(node, "", &mut out);
    out
}

type Timestamp = chrono::DateTime<chrono::Utc>;

/// A row read by a lineage statement.
struct Found {
    row: Value,
    history_reason: Option<String>,
}

struct Walker<'a> {
    client: &'a Client,
    settings: &'a Settings,
    max_depth: usize,
    seen: HashSet<String>,
}

impl Walker<'_> {
    /// The row a key names: current, else its newest history version.
    async fn by_key(
        &self,
        target: Target,
        key: &Map<String, Value>,
    ) -> anyhow::Result<Option<Found>> {
        let key = Value::Object(key.clone());
        let mut stmts = vec![(target.sql(ROW_BY_KEY, false), false)];
        if target.history {
            stmts.push((target.sql(HISTORY_BY_KEY, true), true));
        }
        for (sql, _) in stmts {
            let rows = self.client.query(&sql, &[&key]).await.map_err(|e| {
                match e.code().map(|c| c.code()) {
                    // Class 22 (data exception): a key value that is not of its column's type.
                    Some(c) if c.starts_with("22") => anyhow::anyhow!(
                        "malformed key: {}",
                        e.as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                    ),
                    _ => anyhow::Error::new(e).context(format!(
                        "cannot read {} (was `esurio migrate` run?)",
                        target.table.name
                    )),
                }
            })?;
            if let Some(r) = rows.first() {
                return Ok(Some(Found {
                    row: r.get(0),
                    history_reason: r.get(1),
                }));
            }
        }
        Ok(None)
    }

    async fn batches(&self, ids: &[i64]) -> anyhow::Result<BTreeMap<i64, BatchInfo>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self
            .client
            .query(BATCHES, &[&ids])
            .await
            .context("cannot read ingest_batches")?;
        Ok(rows
            .iter()
            .map(|r| {
                let b = BatchInfo {
                    id: r.get(0),
                    topic: r.get(1),
                    partition: r.get(2),
                    first_offset: r.get(3),
                    last_offset: r.get(4),
                    records: r.get(5),
                    rows_inserted: r.get(6),
                    committed_at: r.get(7),
                    started_at: r.get(8),
                };
                (b.id, b)
            })
            .collect())
    }

    /// Rows of one family written from these positions, current and in history: by the batch that
    /// wrote them where its audit row names its `started_at`, by position alone otherwise. Each
    /// comes with the `started_at` it was found by (`None`: by position).
    async fn by_source(
        &self,
        target: Target,
        positions: &[(String, i32, i64, Option<Timestamp>)],
    ) -> anyhow::Result<Vec<(Lineage, Option<Timestamp>, Found)>> {
        let mut out = Vec::new();
        for by_batch in [true, false] {
            let chosen: Vec<&(String, i32, i64, Option<Timestamp>)> = positions
                .iter()
                .filter(|p| p.3.is_some() == by_batch)
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let topics: Vec<&str> = chosen.iter().map(|p| p.0.as_str()).collect();
            let parts: Vec<i32> = chosen.iter().map(|p| p.1).collect();
            let offsets: Vec<i64> = chosen.iter().map(|p| p.2).collect();
            let ats: Vec<Timestamp> = chosen.iter().filter_map(|p| p.3).collect();
            let template = if by_batch {
                ROWS_BY_EVENT
            } else {
                ROWS_BY_POSITION
            };
            let mut stmts = vec![target.sql(template, false)];
            if target.history {
                stmts.push(target.sql(template, true));
            }
            for sql in stmts {
                let rows = if by_batch {
                    self.client
                        .query(&sql, &[&topics, &parts, &offsets, &ats])
                        .await
                } else {
                    self.client.query(&sql, &[&topics, &parts, &offsets]).await
                }
                .with_context(|| format!("cannot read {} by source position", target.table.name))?;
                for r in rows {
                    let l = Lineage {
                        topic: r.get(2),
                        partition: r.get(3),
                        offset: r.get(4),
                    };
                    out.push((
                        l,
                        r.get(5),
                        Found {
                            row: r.get(0),
                            history_reason: r.get(1),
                        },
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Resolves `node`'s inputs into its children and walks on into them.
    fn expand<'s>(
        &'s mut self,
        node: &'s mut Node,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 's>> {
        Box::pin(async move {
            if let Some(id) = node.identity() {
                if !self.seen.insert(id) {
                    node.status = Status::Repeat;
                    return Ok(());
                }
            }
            let edges = node.inputs();
            let strategy = strategy_key(node);
            if edges.is_empty() && strategy.is_none() {
                return Ok(());
            }
            if depth >= self.max_depth {
                node.truncated = true;
                return Ok(());
            }
            let mut children: Vec<Option<Node>> = vec![None; edges.len()];
            let parsed: Vec<Option<InputRef>> = edges.iter().map(|(_, s)| parse_ref(s)).collect();
            let batch_ids: Vec<i64> = parsed
                .iter()
                .flatten()
                .map(|r| match r {
                    InputRef::Event { batch, .. } | InputRef::Batch(batch) => *batch,
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let batches = self.batches(&batch_ids).await?;

            // Event ids grouped by the family of their topic: one statement per table.
            let mut by_family: BTreeMap<&'static str, (Target, Vec<usize>)> = BTreeMap::new();
            for (i, ((via, text), r)) in edges.iter().zip(&parsed).enumerate() {
                match r {
                    None => {
                        children[i] = Some(Node::unresolved(
                            text,
                            via,
                            Status::Malformed,
                            "neither topic:partition:offset:batch nor batch:<id>".into(),
                        ))
                    }
                    Some(InputRef::Batch(id)) => {
                        let mut n = Node::unresolved(text, via, Status::Batch, String::new());
                        n.warnings.clear();
                        n.batch = batches.get(id).cloned();
                        children[i] = Some(n);
                    }
                    Some(InputRef::Event { topic, .. }) => {
                        match family_of_topic(self.settings, topic) {
                            Some(spec) => {
                                let t = Target::of(spec, spec.tables[0]);
                                by_family
                                    .entry(spec.name)
                                    .or_insert((t, Vec::new()))
                                    .1
                                    .push(i);
                            }
                            None => {
                                children[i] = Some(Node::unresolved(
                                    text,
                                    via,
                                    Status::Malformed,
                                    format!("topic {topic:?} is no family's topic"),
                                ))
                            }
                        }
                    }
                }
            }
            for (target, idx) in by_family.values() {
                let positions: Vec<(String, i32, i64, Option<Timestamp>)> = idx
                    .iter()
                    .filter_map(|i| match &parsed[*i] {
                        Some(InputRef::Event {
                            topic,
                            partition,
                            offset,
                            batch,
                        }) => Some((
                            topic.clone(),
                            *partition,
                            *offset,
                            batches.get(batch).map(|b| b.started_at),
                        )),
                        _ => None,
                    })
                    .collect();
                let found = self.by_source(*target, &positions).await?;
                for i in idx {
                    let Some(InputRef::Event {
                        topic,
                        partition,
                        offset,
                        batch,
                    }) = &parsed[*i]
                    else {
                        continue;
                    };
                    let (via, text) = &edges[*i];
                    let b = batches.get(batch);
                    let mut warnings = Vec::new();
                    match b {
                        None => warnings.push(format!("batch {batch} is not in ingest_batches")),
                        Some(b)
                            if b.topic != *topic
                                || b.partition != *partition
                                || *offset < b.first_offset
                                || *offset > b.last_offset =>
                        {
                            warnings.push(format!(
                                "batch {batch} wrote {}[{}] offsets {}..={}, not this position",
                                b.topic, b.partition, b.first_offset, b.last_offset
                            ))
                        }
                        Some(_) => {}
                    }
                    // Found by its batch: exactly the row that batch wrote. By position (the
                    // batch's audit row is gone): more than one only if the topic was recreated
                    // and its offsets reused; the newest comes first.
                    let at = b.map(|b| b.started_at);
                    let here: Vec<usize> = found
                        .iter()
                        .enumerate()
                        .filter(|(_, (l, found_at, _))| {
                            l.topic == *topic
                                && l.partition == *partition
                                && l.offset == *offset
                                && *found_at == at
                        })
                        .map(|(j, _)| j)
                        .collect();
                    if here.len() > 1 {
                        warnings.push(format!(
                            "{} rows were written from this position (topic recreated?); without the batch's audit row this is the newest",
                            here.len()
                        ));
                    }
                    let child = match here.first() {
                        Some(j) => {
                            // Cloned: two inputs may name one position.
                            let (_, _, f) = &found[*j];
                            let f = Found {
                                row: f.row.clone(),
                                history_reason: f.history_reason.clone(),
                            };
                            let mut n = Node::found(*target, f);
                            n.reference = Some(text.clone());
                            n.via = Some(via);
                            n.batch = b.cloned();
                            n.warnings = warnings;
                            n
                        }
                        None => {
                            let why = if target.history {
                                format!(
                                    "no row of {} or {}_history was written from {topic}:{partition}:{offset} by batch {batch}",
                                    target.table.name, target.table.name
                                )
                            } else {
                                format!(
                                    "no row of {} was written from {topic}:{partition}:{offset} by batch {batch}",
                                    target.table.name
                                )
                            };
                            let mut n = Node::unresolved(text, via, Status::Missing, why);
                            n.batch = b.cloned();
                            n.warnings.extend(warnings);
                            n
                        }
                    };
                    children[*i] = Some(child);
                }
            }
            let mut children: Vec<Node> = children.into_iter().flatten().collect();
            if let Some(key) = strategy {
                let target = Target::find("strategy").context("the strategy table is unknown")?;
                let text = Value::Object(key.clone()).to_string();
                let child = match self.by_key(target, &key).await? {
                    Some(f) => {
                        let mut n = Node::found(target, f);
                        n.reference = Some(text);
                        n.via = Some("strategy");
                        n
                    }
                    None => Node::unresolved(
                        &text,
                        "strategy",
                        Status::Missing,
                        "no such strategy version".into(),
                    ),
                };
                children.push(child);
            }
            for c in &mut children {
                if c.status == Status::Found {
                    self.expand(c, depth + 1).await?;
                }
            }
            node.children = children;
            Ok(())
        })
    }
}

/// A signal's strategy version as a strategy key.
fn strategy_key(node: &Node) -> Option<Map<String, Value>> {
    if node.family != Some("signal") {
        return None;
    }
    let row = node.row.as_ref()?;
    let mut m = Map::new();
    m.insert("strategy_id".into(), row.get("strategy_id")?.clone());
    m.insert("version".into(), row.get("strategy_version")?.clone());
    Some(m)
}

/// Runs `esurio lineage`.
///
/// # Errors
/// An unknown family, a malformed key, a key with no row (current or in history), or the database
/// cannot be reached or is not migrated.
pub async fn run(settings: &Settings, args: LineageArgs) -> anyhow::Result<()> {
    let Some(target) = Target::find(&args.family) else {
        bail!(
            "unknown family {:?}; choose one of: {}",
            args.family,
            Target::names().join(", ")
        );
    };
    let key = parse_key(target.table, &args.key)?;
    let pool = crate::sink::pool::build(&settings.database, "esurio-lineage")?;
    let client = pool
        .get()
        .await
        .context("cannot connect to the database (database.url)")?;
    // Timestamps in keys and rows print in UTC whatever the server's TimeZone.
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .context("cannot set the session time zone")?;
    let mut walker = Walker {
        client: &client,
        settings,
        max_depth: args.depth,
        seen: HashSet::new(),
    };
    let Some(found) = walker.by_key(target, &key).await? else {
        bail!(
            "key not found: no {} row with {} (current{})",
            target.table.name,
            Value::Object(key),
            if target.history { " or in history" } else { "" }
        );
    };
    let mut root = Node::found(target, found);
    walker.expand(&mut root, 0).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&root)?);
    } else {
        print!("{}", render(&root));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_split_from_the_right_and_batches_are_named() {
        assert_eq!(
            parse_ref("it.x.market_data:3:1234:57"),
            Some(InputRef::Event {
                topic: "it.x.market_data".into(),
                partition: 3,
                offset: 1234,
                batch: 57
            })
        );
        assert_eq!(parse_ref("batch:9"), Some(InputRef::Batch(9)));
        for bad in [
            "",
            "batch:",
            "batch:x",
            "market_data:1:2",
            ":1:2:3",
            "t:-1:2:3",
            "t:1:2:x",
        ] {
            assert_eq!(parse_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_plain_for_one_column_and_json_objects_otherwise() {
        let insight = Target::find("insight").unwrap().table;
        let k = parse_key(insight, "regime:AAPL:2026-01-01T00:00:00Z").unwrap();
        assert_eq!(k["insight_id"], "regime:AAPL:2026-01-01T00:00:00Z");
        let signal = Target::find("signal").unwrap().table;
        let err = format!("{:#}", parse_key(signal, "AAPL").unwrap_err());
        assert!(
            err.contains("JSON object") && err.contains("strategy_version"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            parse_key(
                signal,
                r#"{"strategy_id":"s","symbol":"A","ts":"x","extra":1}"#
            )
            .unwrap_err()
        );
        assert!(
            err.contains("missing: strategy_version") && err.contains("extra"),
            "{err}"
        );
        let ok = parse_key(
            signal,
            r#"{"strategy_id":"s","strategy_version":1,"symbol":"A","ts":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 4);
        assert!(parse_key(signal, "{not json").is_err());
    }

    #[test]
    fn unknown_topics_and_other_prefixes_map_by_suffix() {
        let s = Settings::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config"
        )));
        let Ok(s) = s else { return };
        assert_eq!(
            family_of_topic(&s, "it.abc.news_article").unwrap().name,
            "news_article"
        );
        assert_eq!(
            family_of_topic(&s, &s.topic("market_data")).unwrap().name,
            "market_data"
        );
        assert!(family_of_topic(&s, "something_else").is_none());
    }

    #[test]
    fn sql_placeholders_are_filled_with_quoted_identifiers() {
        let t = Target::find("feature").unwrap();
        let sql = t.sql(HISTORY_BY_KEY, true);
        assert!(sql.contains("FROM \"feature_history\" t"), "{sql}");
        assert!(sql.contains("NULL::\"feature\""), "{sql}");
        assert!(
            sql.contains("t.\"model_version\" = k.\"model_version\""),
            "{sql}"
        );
        assert!(!sql.contains('{'), "{sql}");
    }

    #[test]
    fn trees_draw_like_tree() {
        let leaf = |name: &str| Node {
            children: Vec::new(),
            ..Node::unresolved(name, "inputs", Status::Missing, "gone".into())
        };
        let mut mid = leaf("b");
        mid.children = vec![leaf("c")];
        let mut root = leaf("a");
        root.children = vec![mid, leaf("d")];
        let text = render(&root);
        assert_eq!(
            text,
            "a  missing: gone\n├── b  missing: gone\n│   └── c  missing: gone\n└── d  missing: gone\n"
        );
    }
}
