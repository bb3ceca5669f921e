//! The merge: a batch's staged rows into their tables under the family's conflict policy
//! ([`Policy`], docs/RECORDS.md). Runs only when the direct COPY met a key that is already stored
//! (or a bad row); the direct COPY is the path of data without conflicts.
//!
//! The statements are templates in `sql/merge/`, rendered once per table from its declaration
//! (columns, natural key, entity tables), so that the fifteen tables cannot drift apart.
//!
//! - `reject`: the first record of a key stays; a later one with the same values is a duplicate, one
//!   with other values a conflict (quarantined by the caller as `conflicting_duplicate`).
//! - `revise`: the database says, per staged record, what is current under its key and whether the
//!   record repeats a known version; this module replays the rest in Kafka order (newer by
//!   `(version_at, partition, offset)` becomes current, older goes to history), then applies the
//!   result with a few set-based statements. Replaying in order keeps the counts the same whatever
//!   the batch boundaries are.

use super::SinkError;
use crate::records::{FamilySpec, Policy};
use crate::sink::copy::Table;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use std::sync::LazyLock;

/// What merging one offset range did.
#[derive(Debug, Default)]
pub struct RangeOutcome {
    /// Rows inserted into (or replaced in) the family's current tables, entities included.
    pub rows: u64,
    /// Records dropped as identical to a known version.
    pub duplicates: u64,
    /// Records that became the current version of a stored key.
    pub revised: u64,
    /// Records stored straight into history (a newer version was current).
    pub superseded: u64,
    /// Records of a `reject` family whose key holds other values: `(offset, message)`.
    pub conflicts: Vec<(i64, String)>,
    /// Update records applied to their target row.
    pub updated: u64,
    /// Tombstones that deleted a row.
    pub deleted: u64,
    /// Records the database does not know a reference of: `(offset, reason, message)`, quarantined
    /// by the caller (src/sink/writeback.rs).
    pub unknown: Vec<(i64, String, String)>,
}

impl RangeOutcome {
    pub fn add(&mut self, o: RangeOutcome) {
        self.rows += o.rows;
        self.duplicates += o.duplicates;
        self.revised += o.revised;
        self.superseded += o.superseded;
        self.conflicts.extend(o.conflicts);
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.unknown.extend(o.unknown);
    }
}

struct RejectSql {
    insert: String,
    classify: String,
}

struct ChildSql {
    retire: String,
    delete: String,
    insert: String,
    history: String,
}

struct ReviseSql {
    lock: String,
    classify: String,
    retire: String,
    update: String,
    insert: String,
    history: String,
    children: Vec<ChildSql>,
}

enum FamilySql {
    Reject(RejectSql),
    Revise(ReviseSql),
    /// Updates have their own statements (src/sink/writeback.rs).
    Update,
}

static SQL: LazyLock<HashMap<&'static str, FamilySql>> = LazyLock::new(|| {
    crate::records::FAMILIES
        .iter()
        .map(|f| (f.name, FamilySql::for_family(f)))
        .collect()
});

impl FamilySql {
    fn for_family(f: &FamilySpec) -> Self {
        let parent = f.tables[0];
        let children = &f.tables[1..];
        let r = |t: &str| render(t, parent, children, None);
        match f.policy {
            Policy::Reject => FamilySql::Reject(RejectSql {
                insert: r(include_str!("../../sql/merge/reject_insert.sql")),
                classify: r(include_str!("../../sql/merge/reject_classify.sql")),
            }),
            Policy::Update => FamilySql::Update,
            Policy::Revise => FamilySql::Revise(ReviseSql {
                lock: r(include_str!("../../sql/merge/revise_lock.sql")),
                classify: r(include_str!("../../sql/merge/revise_classify.sql")),
                retire: r(include_str!("../../sql/merge/revise_retire.sql")),
                update: r(include_str!("../../sql/merge/revise_update.sql")),
                insert: r(include_str!("../../sql/merge/revise_insert.sql")),
                history: r(include_str!("../../sql/merge/revise_history.sql")),
                children: children
                    .iter()
                    .map(|c| {
                        let r = |t: &str| render(t, parent, children, Some(c));
                        ChildSql {
                            retire: r(include_str!("../../sql/merge/child_retire.sql")),
                            delete: r(include_str!("../../sql/merge/child_delete.sql")),
                            insert: r(include_str!("../../sql/merge/child_insert.sql")),
                            history: r(include_str!("../../sql/merge/child_history.sql")),
                        }
                    })
                    .collect(),
            }),
        }
    }
}

/// Where the rows an alias stands for live, which decides where its entity set is found.
#[derive(Clone, Copy)]
enum Source {
    /// The table itself (`t`).
    Current,
    /// The history table (`h`): the entity set with the same lineage.
    History,
    /// The staging table (`s`, `p`): the entity rows staged from the same record.
    Stage,
}

fn source(alias: &str) -> Source {
    match alias {
        "t" => Source::Current,
        "h" => Source::History,
        _ => Source::Stage,
    }
}

fn prefixed(alias: &str, cols: impl Iterator<Item = &'static str>) -> String {
    cols.map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The entity set of the row `alias` stands for, as a sorted text array (text, so that NULLs in
/// an entity compare equal, and floats compare by their exact shortest form).
fn entity_set(alias: &str, child: &Table) -> String {
    let fk = child.key[0];
    let (rel, cond) = match source(alias) {
        Source::Current => (child.name.to_owned(), String::new()),
        Source::History => (
            format!("{}_history", child.name),
            format!(
                " AND c.source_topic = {alias}.source_topic AND c.source_partition = {alias}.source_partition AND c.source_offset = {alias}.source_offset"
            ),
        ),
        Source::Stage => (
            format!("pg_temp.stage_{}", child.name),
            format!(" AND c.source_offset = {alias}.source_offset"),
        ),
    };
    format!(
        "ARRAY(SELECT ROW({})::text FROM {rel} c WHERE c.{fk} = {alias}.{fk}{cond} ORDER BY {})",
        prefixed("c", child.identity_columns()),
        prefixed("c", child.key[1..].iter().copied()),
    )
}

/// Renders a `sql/merge/` template for `parent` (see the README there for the placeholders).
pub(crate) fn render(
    template: &str,
    parent: &Table,
    children: &[&'static Table],
    child: Option<&Table>,
) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let token = &rest[i + 1..i + j];
        out.push_str(&resolve(token, parent, children, child));
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

fn resolve(
    token: &str,
    parent: &Table,
    children: &[&'static Table],
    child: Option<&Table>,
) -> String {
    let name = parent.name;
    let cols = || parent.columns.iter().copied();
    let keys = || parent.key.iter().copied();
    let pair = |rest: &str| {
        let (a, b) = rest.split_once('_').unwrap_or(("t", "s"));
        (a.to_owned(), b.to_owned())
    };
    match token {
        "table" => name.to_owned(),
        "stage" => format!("pg_temp.stage_{name}"),
        "history" => format!("{name}_history"),
        "columns" => parent.columns.join(", "),
        "key" => parent.key.join(", "),
        "child" => child.map_or_else(String::new, |c| c.name.to_owned()),
        "child_stage" => child.map_or_else(String::new, |c| format!("pg_temp.stage_{}", c.name)),
        "child_history" => child.map_or_else(String::new, |c| format!("{}_history", c.name)),
        "child_columns" => child.map_or_else(String::new, |c| c.columns.join(", ")),
        "c.child_columns" => {
            child.map_or_else(String::new, |c| prefixed("c", c.columns.iter().copied()))
        }
        "fk" => child.map_or_else(String::new, |c| c.key[0].to_owned()),
        t if t.starts_with("key_") => {
            let (a, b) = pair(&t[4..]);
            keys()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        }
        t if t.starts_with("same_") => {
            let (a, b) = pair(&t[5..]);
            let mut parts = vec![format!(
                "({}) IS NOT DISTINCT FROM ({})",
                prefixed(&a, parent.identity_columns()),
                prefixed(&b, parent.identity_columns())
            )];
            for c in children {
                parts.push(format!(
                    "{} IS NOT DISTINCT FROM {}",
                    entity_set(&a, c),
                    entity_set(&b, c)
                ));
            }
            format!("({})", parts.join(" AND "))
        }
        t if t.ends_with(".columns") => prefixed(&t[..t.len() - 8], cols()),
        t if t.ends_with(".key0") => format!("{}.{}", &t[..t.len() - 5], parent.key[0]),
        t if t.ends_with(".key") => prefixed(&t[..t.len() - 4], keys()),
        // Not a placeholder (e.g. a brace in a comment): keep it.
        t => format!("{{{t}}}"),
    }
}

/// Merges the staged records with offsets in `[lo, hi]` under the family's policy. `records` is how
/// many valid records the range holds (for the reject policy's duplicate count).
///
/// # Errors
/// A database error; a data error (a constraint) is for the caller to isolate by bisecting.
/// [`SinkError::Concurrent`] when another writer stored one of the keys meanwhile (retry the batch).
pub async fn merge_range(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    lo: i64,
    hi: i64,
    echo: impl Fn(&str),
) -> Result<RangeOutcome, SinkError> {
    if family.policy == Policy::Update {
        return super::writeback::update(tx, lo, hi, echo).await;
    }
    let sql = SQL
        .get(family.name)
        .ok_or_else(|| SinkError::Concurrent(format!("no merge SQL for {}", family.name)))?;
    match sql {
        FamilySql::Reject(s) => reject(tx, family, s, lo, hi, echo).await,
        FamilySql::Revise(s) => revise(tx, family, s, lo, hi, echo).await,
        FamilySql::Update => super::writeback::update(tx, lo, hi, echo).await,
    }
}

async fn reject(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    sql: &RejectSql,
    lo: i64,
    hi: i64,
    echo: impl Fn(&str),
) -> Result<RangeOutcome, SinkError> {
    echo(&sql.insert);
    let stmt = tx.prepare_cached(&sql.insert).await?;
    let inserted = tx.execute(&stmt, &[&lo, &hi]).await?;
    echo(&sql.classify);
    let stmt = tx.prepare_cached(&sql.classify).await?;
    let rows = tx.query(&stmt, &[&lo, &hi]).await?;
    let mut out = RangeOutcome {
        rows: inserted,
        ..Default::default()
    };
    let mut stored = 0u64;
    let table = family.tables[0];
    for r in rows {
        if r.get::<_, bool>("stored") {
            stored += 1;
        } else if r.get::<_, Option<bool>>("identical").unwrap_or(false) {
            out.duplicates += 1;
        } else {
            let key: String = r.get("key");
            let holder: String = r.get("holder");
            out.conflicts.push((
                r.get("source_offset"),
                format!(
                    "{} already holds other values under the key ({}) = {key} (stored from {holder}); the first row stays",
                    table.name,
                    table.key.join(", ")
                ),
            ));
        }
    }
    // Rows stored by this record before (an earlier read of the same offset) are replays too.
    out.duplicates += stored.saturating_sub(inserted);
    Ok(out)
}

/// A version of a key: how new it is, and which staged record it is (none: the stored row).
#[derive(Clone, Copy)]
struct Version {
    at: (DateTime<Utc>, i32, i64),
    staged: Option<i64>,
}

async fn revise(
    tx: &Transaction<'_>,
    family: &FamilySpec,
    sql: &ReviseSql,
    lo: i64,
    hi: i64,
    echo: impl Fn(&str),
) -> Result<RangeOutcome, SinkError> {
    echo(&sql.lock);
    let stmt = tx.prepare_cached(&sql.lock).await?;
    tx.query(&stmt, &[&lo, &hi]).await?;
    echo(&sql.classify);
    let stmt = tx.prepare_cached(&sql.classify).await?;
    let rows = tx.query(&stmt, &[&lo, &hi]).await?;

    let mut out = RangeOutcome::default();
    // Per key: the current version as the replay goes, and whether a row was stored before.
    let mut current: HashMap<String, (Option<Version>, bool)> = HashMap::new();
    let mut history: Vec<i64> = Vec::new();
    let mut reasons: Vec<&'static str> = Vec::new();
    for r in &rows {
        if r.get::<_, Option<bool>>("duplicate").unwrap_or(false) {
            out.duplicates += 1;
            continue;
        }
        let offset: i64 = r.get("source_offset");
        let me = Version {
            at: (r.get("version_at"), r.get("source_partition"), offset),
            staged: Some(offset),
        };
        let (cur, _) = current.entry(r.get("key")).or_insert_with(|| {
            let stored = r.get::<_, Option<i64>>("current_offset").map(|o| Version {
                at: (r.get("current_version_at"), r.get("current_partition"), o),
                staged: None,
            });
            (stored, stored.is_some())
        });
        match cur {
            None => *cur = Some(me),
            Some(c) if me.at > c.at => {
                out.revised += 1;
                if let Some(prev) = c.staged {
                    history.push(prev);
                    reasons.push("revised");
                }
                *cur = Some(me);
            }
            Some(_) => {
                out.superseded += 1;
                history.push(offset);
                reasons.push("superseded");
            }
        }
    }
    let mut replace: Vec<i64> = Vec::new();
    let mut insert: Vec<i64> = Vec::new();
    for (cur, existed) in current.values() {
        if let Some(Version {
            staged: Some(o), ..
        }) = cur
        {
            if *existed {
                replace.push(*o);
            } else {
                insert.push(*o);
            }
        }
    }

    let run = |q: &str| {
        echo(q);
        q.to_owned()
    };
    if !replace.is_empty() {
        let stmt = tx.prepare_cached(&run(&sql.retire)).await?;
        tx.execute(&stmt, &[&replace]).await?;
        for c in &sql.children {
            let stmt = tx.prepare_cached(&run(&c.retire)).await?;
            tx.execute(&stmt, &[&replace]).await?;
            let stmt = tx.prepare_cached(&run(&c.delete)).await?;
            tx.execute(&stmt, &[&replace]).await?;
        }
        let stmt = tx.prepare_cached(&run(&sql.update)).await?;
        out.rows += tx.execute(&stmt, &[&replace]).await?;
    }
    if !insert.is_empty() {
        let stmt = tx.prepare_cached(&run(&sql.insert)).await?;
        let n = tx.execute(&stmt, &[&insert]).await?;
        if n != insert.len() as u64 {
            return Err(SinkError::Concurrent(format!(
                "another writer stored {} of {} new {} keys meanwhile",
                insert.len() as u64 - n,
                insert.len(),
                family.name
            )));
        }
        out.rows += n;
    }
    let winners: Vec<i64> = replace.iter().chain(insert.iter()).copied().collect();
    if !winners.is_empty() {
        for c in &sql.children {
            let stmt = tx.prepare_cached(&run(&c.insert)).await?;
            out.rows += tx.execute(&stmt, &[&winners]).await?;
        }
    }
    if !history.is_empty() {
        let stmt = tx.prepare_cached(&run(&sql.history)).await?;
        tx.execute(&stmt, &[&history, &reasons]).await?;
        for c in &sql.children {
            let stmt = tx.prepare_cached(&run(&c.history)).await?;
            tx.execute(&stmt, &[&history, &reasons]).await?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_without_leftover_placeholders() {
        for f in crate::records::FAMILIES {
            let sql = FamilySql::for_family(f);
            let all: Vec<&String> = match &sql {
                FamilySql::Reject(s) => vec![&s.insert, &s.classify],
                FamilySql::Update => vec![],
                FamilySql::Revise(s) => {
                    let mut v = vec![
                        &s.lock,
                        &s.classify,
                        &s.retire,
                        &s.update,
                        &s.insert,
                        &s.history,
                    ];
                    for c in &s.children {
                        v.extend([&c.retire, &c.delete, &c.insert, &c.history]);
                    }
                    v
                }
            };
            for q in all {
                let body: String = q
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect();
                assert!(
                    !body.contains('{') && !body.contains('}'),
                    "{}: {q}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn identity_of_an_article_includes_its_entity_set() {
        let f = crate::records::family("news_article").unwrap();
        let FamilySql::Revise(s) = FamilySql::for_family(f) else {
            panic!("news_article revises");
        };
        assert!(s.classify.contains("pg_temp.stage_news_entity"));
        assert!(s.classify.contains("news_entity_history"));
        assert!(!s.classify.contains("t.version_at) IS NOT DISTINCT"));
    }
}
