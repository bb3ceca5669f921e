//! What the ML services write back, beyond plain rows (docs/RECORDS.md):
//! - references: a result must name a known symbol (a feature's entity, an insight's or a signal's
//!   symbol) and a signal an existing strategy version. Checked set-based per batch against the
//!   staged records; the records that fail are quarantined alone (`unknown_entity`,
//!   `unknown_strategy`) and leave staging before the merge.
//! - updates (`sentiment_update`): applied to their target rows in Kafka order; each value an
//!   update replaces goes to `sentiment_history`; an update identical to the current value is a
//!   duplicate; one whose row does not exist is quarantined (`unknown_target`).
//! - deletes: a tombstone on insight, strategy or signal moves the row of its key to
//!   `<table>_history` as `deleted`; a tombstone of a row deleted before is a duplicate, one of a
//!   key never stored is quarantined (`unknown_target`).

use super::merge::{render, RangeOutcome};
use super::SinkError;
use crate::records::{FamilySpec, FAMILIES, UNKNOWN_TARGET};
use crate::sink::copy::Table;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use std::sync::LazyLock;
use tokio_postgres::types::Type;

/// A staged record the database does not know a reference of: `(offset, reason, message)`.
pub type Unknown = (i64, String, String);

/// The staged records of the offset range `lo..=hi` whose references are unknown (empty for
/// families without references).
///
/// # Errors
/// A database error.
pub async fn unknown_refs(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    lo: i64,
    hi: i64,
    echo: impl Fn(&str),
) -> Result<Vec<Unknown>, SinkError> {
    let Some(sql) = family.refs_sql else {
        return Ok(Vec::new());
    };
    echo(sql);
    let stmt = tx.prepare_cached(sql).await?;
    let rows = tx.query(&stmt, &[&lo, &hi]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Takes records `offsets` out of the family's staging table (they are quarantined instead).
///
/// # Errors
/// A database error.
pub async fn drop_staged(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    offsets: &[i64],
    echo: impl Fn(&str),
) -> Result<(), SinkError> {
    let sql = include_str!("../../sql/writeback/unknown_refs_drop.sql").replace(
        "{stage}",
        &format!("pg_temp.stage_{}", family.tables[0].name),
    );
    echo(&sql);
    let stmt = tx.prepare_cached(&sql).await?;
    tx.execute(&stmt, &[&offsets]).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deletes

/// What a tombstone did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The row left the table for its history.
    Row,
    /// The row was deleted before: a replayed tombstone.
    Before,
    /// No row of the key was ever stored (or it was never deleted and is gone otherwise).
    Unknown,
}

struct DeleteSql {
    delete: String,
    before: String,
}

static DELETE_SQL: LazyLock<HashMap<&'static str, DeleteSql>> = LazyLock::new(|| {
    FAMILIES
        .iter()
        .filter(|f| f.delete_key.is_some())
        .map(|f| {
            let t = f.tables[0];
            let r = |tpl: &str| render(&tpl.replace("{key_json}", &key_json(t)), t, &[], None);
            (
                f.name,
                DeleteSql {
                    delete: r(include_str!("../../sql/writeback/delete.sql")),
                    before: r(include_str!("../../sql/writeback/deleted_before.sql")),
                },
            )
        })
        .collect()
});

/// `t.<key column> = ($1::jsonb ->> '<column>')::<type> AND ...`: the row whose natural key is the
/// JSON object `$1` (made by the family's `delete_key`).
fn key_json(t: &Table) -> String {
    t.key
        .iter()
        .map(|k| {
            let i = t.columns.iter().position(|c| c == k).unwrap_or(0);
            let ty = match t.types.get(i) {
                Some(&Type::INT4) => "int",
                Some(&Type::INT8) => "bigint",
                Some(&Type::TIMESTAMPTZ) => "timestamptz",
                Some(&Type::UUID) => "uuid",
                _ => "text",
            };
            format!("t.{k} = ($1::jsonb ->> '{k}')::{ty}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Applies one tombstone whose parsed key is `key` (JSON object text).
///
/// # Errors
/// A database error.
pub async fn delete(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    key: &str,
    echo: impl Fn(&str),
) -> Result<Deleted, SinkError> {
    let sql = DELETE_SQL
        .get(family.name)
        .ok_or_else(|| SinkError::Concurrent(format!("{} has no deletes", family.name)))?;
    echo(&sql.delete);
    let stmt = tx.prepare_cached(&sql.delete).await?;
    if tx.execute(&stmt, &[&key]).await? > 0 {
        return Ok(Deleted::Row);
    }
    echo(&sql.before);
    let stmt = tx.prepare_cached(&sql.before).await?;
    let before: bool = tx.query_one(&stmt, &[&key]).await?.get(0);
    Ok(if before {
        Deleted::Before
    } else {
        Deleted::Unknown
    })
}

// ---------------------------------------------------------------------------------------------
// Updates

/// The key column of each update target.
const TARGET_KEYS: &[(&str, &str)] = &[("news_article", "article_id"), ("social_post", "post_uid")];

struct TargetSql {
    lock: String,
    history_current: String,
    apply: String,
}

static TARGET_SQL: LazyLock<Vec<TargetSql>> = LazyLock::new(|| {
    TARGET_KEYS
        .iter()
        .map(|(target, key)| {
            // Both are compile-time constants, never configuration.
            let r = |t: &str| t.replace("{target}", target).replace("{key}", key);
            TargetSql {
                lock: r(include_str!("../../sql/writeback/update_lock.sql")),
                history_current: r(include_str!(
                    "../../sql/writeback/update_history_current.sql"
                )),
                apply: r(include_str!("../../sql/writeback/update_apply.sql")),
            }
        })
        .collect()
});

const UPDATE_CLASSIFY: &str = include_str!("../../sql/writeback/update_classify.sql");
const UPDATE_HISTORY_STAGED: &str = include_str!("../../sql/writeback/update_history_staged.sql");

/// A sentiment value, compared whole: the same score, model, version, inputs and time.
#[derive(Debug, Clone, PartialEq)]
struct Value {
    score: f64,
    model: Option<String>,
    version: Option<String>,
    inputs: Option<Vec<String>>,
    at: Option<DateTime<Utc>>,
}

/// Where the current value of a target row came from as the replay goes.
#[derive(Clone)]
enum From {
    /// The row as stored (or none: `None` value).
    Stored,
    /// A staged update of this range (its offset).
    Staged(i64),
}

/// Applies the staged `sentiment_update` records of the offset range `lo..=hi` in Kafka order.
///
/// # Errors
/// A database error; a data error is for the caller to isolate by bisecting.
pub async fn update(
    tx: &Transaction<'_>,
    lo: i64,
    hi: i64,
    echo: impl Fn(&str),
) -> Result<RangeOutcome, SinkError> {
    for t in TARGET_SQL.iter() {
        echo(&t.lock);
        let stmt = tx.prepare_cached(&t.lock).await?;
        tx.query(&stmt, &[&lo, &hi]).await?;
    }
    echo(UPDATE_CLASSIFY);
    let stmt = tx.prepare_cached(UPDATE_CLASSIFY).await?;
    let rows = tx.query(&stmt, &[&lo, &hi]).await?;

    let mut out = RangeOutcome::default();
    // Per (target, key): its current value and where it came from.
    let mut current: HashMap<(String, String), (Option<Value>, From)> = HashMap::new();
    // Per target (index into TARGET_KEYS): the updates that replace a stored value, and the last
    // update of each row.
    let mut replace_stored: Vec<Vec<i64>> = vec![Vec::new(); TARGET_KEYS.len()];
    let mut replaced_staged: (Vec<i64>, Vec<String>) = (Vec::new(), Vec::new());
    let mut last: HashMap<(String, String), (usize, i64)> = HashMap::new();
    for r in &rows {
        let offset: i64 = r.get("source_offset");
        let target: String = r.get("target");
        let key: String = r.get("key");
        if !r.get::<_, bool>("found") {
            out.unknown.push((
                offset,
                UNKNOWN_TARGET.to_owned(),
                format!("{target} has no row with the key {key} (an update never creates a row)"),
            ));
            continue;
        }
        let me = Value {
            score: r.get("sentiment_score"),
            model: r.get("model"),
            version: r.get("model_version"),
            inputs: r.get("inputs"),
            at: r.get("computed_at"),
        };
        let slot = current
            .entry((target.clone(), key.clone()))
            .or_insert_with(|| {
                let stored = r.get::<_, Option<f64>>("current_score").map(|score| Value {
                    score,
                    model: r.get("current_model"),
                    version: r.get("current_model_version"),
                    inputs: r.get("current_inputs"),
                    at: r.get("current_at"),
                });
                (stored, From::Stored)
            });
        if slot.0.as_ref() == Some(&me) {
            out.duplicates += 1;
            continue;
        }
        let ti = TARGET_KEYS
            .iter()
            .position(|(t, _)| *t == target)
            .unwrap_or(0);
        match slot.1 {
            From::Stored => {
                if slot.0.is_some() {
                    replace_stored[ti].push(offset);
                }
            }
            From::Staged(prev) => {
                replaced_staged.0.push(prev);
                replaced_staged.1.push(r.get("lineage"));
            }
        }
        *slot = (Some(me), From::Staged(offset));
        last.insert((target, key), (ti, offset));
        out.updated += 1;
    }

    for (t, offsets) in TARGET_SQL.iter().zip(&replace_stored) {
        if !offsets.is_empty() {
            echo(&t.history_current);
            let stmt = tx.prepare_cached(&t.history_current).await?;
            tx.execute(&stmt, &[offsets]).await?;
        }
    }
    if !replaced_staged.0.is_empty() {
        echo(UPDATE_HISTORY_STAGED);
        let stmt = tx.prepare_cached(UPDATE_HISTORY_STAGED).await?;
        tx.execute(&stmt, &[&replaced_staged.0, &replaced_staged.1])
            .await?;
    }
    for (ti, t) in TARGET_SQL.iter().enumerate() {
        let finals: Vec<i64> = last
            .values()
            .filter(|(i, _)| *i == ti)
            .map(|(_, o)| *o)
            .collect();
        if !finals.is_empty() {
            echo(&t.apply);
            let stmt = tx.prepare_cached(&t.apply).await?;
            tx.execute(&stmt, &[&finals]).await?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_statements_name_the_key_columns_with_their_types() {
        for name in ["insight", "strategy", "signal"] {
            let sql = DELETE_SQL.get(name).unwrap();
            for q in [&sql.delete, &sql.before] {
                let body: String = q
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect();
                assert!(!body.contains('{') && !body.contains('}'), "{q}");
            }
        }
        let s = &DELETE_SQL.get("signal").unwrap().delete;
        assert!(s.contains("t.strategy_version = ($1::jsonb ->> 'strategy_version')::int"));
        assert!(s.contains("t.ts = ($1::jsonb ->> 'ts')::timestamptz"));
        assert!(s.contains("INSERT INTO signal_history"));
        assert!(!DELETE_SQL.contains_key("feature"));
    }
}
