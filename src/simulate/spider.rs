//! Spider realism: records that come back to an earlier record's natural key the way real spiders
//! do (replays, conflicting ticks, revisions in and out of order, re-crawls with changed entities),
//! and trades in the same millisecond, each with the outcome the database must give it.
//!
//! The semantics (docs/RECORDS.md, "policies"): market_data, crypto_data and order_book *reject* a
//! second, different record of a key (`conflicting_duplicate`, the first row stays); every other
//! family *revises*: the newest version (by its version time) is the row, every other distinct
//! version is kept once in `<table>_history`. A record identical to a version already seen is a
//! duplicate.
//!
//! Every version of a key is made distinct by construction (a revision number goes into a changed
//! value, a new version time into the version field or the Kafka timestamp), and every replay is the
//! exact record of an earlier version, so the outcome of each record is known without normalizing
//! it; the unit tests check that against a reference model run on the validator's typed records.
//! All records of a key carry the original's Kafka key, so they land on one partition in order.

use super::families::{decimals, entity, round_dp};
use super::gen::Env;
use super::universe::{PEOPLE, PLACES};
use super::wire::{Rec, TsStyle, V};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// A kind of realism record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spider {
    /// The same record again (an earlier version of the key, possibly in another encoding).
    Replay,
    /// A re-crawl whose entities are the same set in another order: identical.
    Reordered,
    /// Same key, other price or book (reject families): `conflicting_duplicate`.
    Conflict,
    /// Same key, changed values, a newer version time: revises the row.
    Revision,
    /// Same key, changed values, a version time older than every version seen: superseded.
    LateRevision,
    /// A re-crawl of an article or post whose entity set changed, newer: revises the row.
    Recrawl,
    /// Another trade of the instrument in the same millisecond, at another microsecond: a new key.
    SameMillisecond,
}

impl Spider {
    pub fn as_str(self) -> &'static str {
        match self {
            Spider::Replay => "replay",
            Spider::Reordered => "reordered_entities",
            Spider::Conflict => "conflicting_tick",
            Spider::Revision => "revision",
            Spider::LateRevision => "late_revision",
            Spider::Recrawl => "recrawl",
            Spider::SameMillisecond => "same_millisecond_trade",
        }
    }
}

/// What the database must make of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new natural key: its rows are inserted.
    Inserted,
    /// Identical to a version already seen: dropped.
    Duplicate,
    /// Reject family, same key, other values: quarantined as `conflicting_duplicate`.
    Conflicting,
    /// Revise family, newer version: the row takes its values, the old version goes to history.
    Revised,
    /// Revise family, older version than the row: stored in history only.
    Superseded,
    /// Rejected by the decoder or validator (an invalid record).
    Rejected,
}

/// The reason the database quarantines a conflicting record with.
pub const CONFLICTING_DUPLICATE: &str = "conflicting_duplicate";

/// How a family treats a second record of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Reject,
    Revise,
}

/// The policy of a family.
pub fn policy(family: &str) -> Policy {
    match family {
        "market_data" | "crypto_data" | "order_book" => Policy::Reject,
        _ => Policy::Revise,
    }
}

/// Where a revise family's version time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionTime {
    /// A timestamp field of the record.
    Field(&'static str),
    /// The Kafka record's timestamp (producer CreateTime).
    Kafka,
}

fn version_time(family: &str) -> VersionTime {
    match family {
        "earnings_event" => VersionTime::Field("reported_at"),
        "economic_indicator" => VersionTime::Field("released_at"),
        "insight" => VersionTime::Field("generated_at"),
        "strategy" => VersionTime::Field("created_at"),
        _ => VersionTime::Kafka,
    }
}

/// The realism kinds a family gets.
pub fn kinds(family: &str) -> &'static [Spider] {
    match family {
        "market_data" | "crypto_data" => {
            &[Spider::Replay, Spider::Conflict, Spider::SameMillisecond]
        }
        "order_book" => &[Spider::Replay, Spider::Conflict],
        "news_article" | "social_post" => &[
            Spider::Replay,
            Spider::Reordered,
            Spider::Revision,
            Spider::LateRevision,
            Spider::Recrawl,
        ],
        _ => &[Spider::Replay, Spider::Revision, Spider::LateRevision],
    }
}

/// Rows a record adds to (or, for replaced entities, removes from) each table and its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effect {
    /// (table, change of its row count).
    pub tables: Vec<(&'static str, i64)>,
    /// (table, rows its history table gains).
    pub history: Vec<(&'static str, u64)>,
}

/// One version of a key as emitted.
struct Version {
    rec: Rec,
    entities: usize,
}

/// A valid record whose key realism records may come back to.
struct Entry {
    key: Vec<u8>,
    /// Every distinct version emitted (revise families); reject families keep only the first row.
    /// Version times: `min_vt`, `max_vt` (epoch µs; Kafka time in whole milliseconds).
    versions: Vec<Version>,
    current: usize,
    min_vt: i64,
    max_vt: i64,
    revisions: u32,
    conflicts: u32,
    /// Sub-millisecond offsets (µs) taken in the original's millisecond (same-millisecond trades).
    micros_taken: Vec<i64>,
}

/// A realism record ready to encode; [`Spiders::commit`] records it once it is known to be sent
/// as a valid record.
pub(crate) struct Planned {
    pub kind: Spider,
    pub rec: Rec,
    pub key: Vec<u8>,
    pub kafka_ts: i64,
    pub outcome: Outcome,
    pub effect: Effect,
    entry: usize,
    vt: i64,
    entities: usize,
}

/// Originals kept for realism records: the most recent valid ones.
const POOL: usize = 64;

/// The realism state of one family's generator.
pub(crate) struct Spiders {
    family: &'static str,
    tables: Vec<&'static str>,
    policy: Policy,
    vt: VersionTime,
    pool: VecDeque<Entry>,
}

/// The number of entities of a record (news and social posts), 0 otherwise.
fn entity_count(rec: &Rec) -> usize {
    match rec.get("entities") {
        Some(V::Arr(v)) => v.len(),
        _ => 0,
    }
}

fn ts_of(rec: &Rec, field: &str) -> Option<(i64, TsStyle)> {
    match rec.get(field)?.inner()? {
        V::Ts(m, s) => Some((*m, *s)),
        _ => None,
    }
}

impl Spiders {
    pub fn new(family: &'static str, tables: Vec<&'static str>) -> Self {
        Self {
            family,
            tables,
            policy: policy(family),
            vt: version_time(family),
            pool: VecDeque::with_capacity(POOL),
        }
    }

    /// The effect of a new key: its rows.
    pub fn inserted(rows: &[(&'static str, usize)]) -> Effect {
        Effect {
            tables: rows.iter().map(|(t, n)| (*t, *n as i64)).collect(),
            history: Vec::new(),
        }
    }

    /// Remembers a valid base record (a new key) as a possible original.
    pub fn remember(&mut self, rec: &Rec, key: &[u8], kafka_ts: i64) {
        let vt = match self.vt {
            VersionTime::Field(f) => ts_of(rec, f).map_or(kafka_ts * 1000, |(m, _)| m),
            VersionTime::Kafka => kafka_ts * 1000,
        };
        if self.pool.len() == POOL {
            self.pool.pop_front();
        }
        self.pool.push_back(Entry {
            key: key.to_vec(),
            versions: vec![Version {
                rec: rec.clone(),
                entities: entity_count(rec),
            }],
            current: 0,
            min_vt: vt,
            max_vt: vt,
            revisions: 0,
            conflicts: 0,
            micros_taken: Vec::new(),
        });
    }

    /// A realism record of `kind` at position `i` (Kafka time `slot_ms`); `None` when no valid
    /// record came before.
    pub fn plan(
        &self,
        kind: Spider,
        i: u64,
        slot_ms: i64,
        rng: &mut ChaCha8Rng,
        env: &Env,
    ) -> Option<Planned> {
        if self.pool.is_empty() {
            return None;
        }
        let mut k = rng.gen_range(0..self.pool.len());
        if kind == Spider::Reordered {
            // Prefer an article with at least two entities, so that the order can change.
            for _ in 0..16 {
                if self.pool[k].versions.iter().any(|v| v.entities >= 2) {
                    break;
                }
                k = rng.gen_range(0..self.pool.len());
            }
        }
        let e = &self.pool[k];
        let parent = self.tables[0];
        let entity_table = self.tables.get(1).copied();
        let none = Effect::default();
        let mut p = Planned {
            kind,
            rec: e.versions[0].rec.clone(),
            key: e.key.clone(),
            kafka_ts: slot_ms,
            outcome: Outcome::Duplicate,
            effect: none,
            entry: k,
            vt: 0,
            entities: 0,
        };
        match kind {
            Spider::Replay | Spider::Reordered => {
                let v = if self.policy == Policy::Reject {
                    &e.versions[0]
                } else {
                    let with_entities: Vec<&Version> = e
                        .versions
                        .iter()
                        .filter(|v| kind == Spider::Replay || v.entities >= 2)
                        .collect();
                    with_entities.choose(rng).copied().unwrap_or(&e.versions[0])
                };
                p.rec = v.rec.clone();
                if kind == Spider::Reordered {
                    if let Some(V::Arr(ents)) = p.rec.get_mut("entities") {
                        if ents.len() >= 2 {
                            let by = rng.gen_range(1..ents.len());
                            ents.rotate_left(by);
                        }
                    }
                }
            }
            Spider::Conflict => {
                conflict(self.family, &mut p.rec, e.conflicts + 1);
                p.outcome = Outcome::Conflicting;
            }
            Spider::SameMillisecond => {
                let (m, style) = ts_of(&p.rec, "ts")?;
                let ms = m.div_euclid(1000) * 1000;
                let free: Vec<i64> = (0..1000)
                    .map(|u| ms + u)
                    .filter(|t| *t != m && !e.micros_taken.contains(t))
                    .collect();
                let t = *free.choose(rng)?;
                p.rec.set("ts", V::Ts(t, style));
                trade(self.family, &mut p.rec, rng);
                p.outcome = Outcome::Inserted;
                p.vt = t;
                p.effect = Effect {
                    tables: vec![(parent, 1)],
                    history: Vec::new(),
                };
            }
            Spider::Revision | Spider::LateRevision | Spider::Recrawl => {
                let r = e.revisions + 1;
                let cur = &e.versions[e.current];
                // Revisions start from the current row, so that a re-crawl changes what is there.
                p.rec = cur.rec.clone();
                revise(self.family, &mut p.rec, &e.versions[0].rec, r);
                if kind == Spider::Recrawl {
                    change_entities(&mut p.rec, rng);
                }
                let vt = if kind == Spider::LateRevision {
                    // Older than every version of the key: from a minute to two before.
                    e.min_vt - rng.gen_range(60_000..120_000) * 1000
                } else {
                    match self.vt {
                        VersionTime::Field(_) => env.ts(i).max(e.max_vt + 1000),
                        VersionTime::Kafka => (slot_ms * 1000).max(e.max_vt + 1000),
                    }
                };
                match self.vt {
                    VersionTime::Field(f) => p.rec.set(f, V::Ts(vt, TsStyle::Utc)),
                    VersionTime::Kafka => p.kafka_ts = vt.div_euclid(1000),
                }
                p.vt = vt;
                p.entities = entity_count(&p.rec);
                let mut history = vec![(parent, 1)];
                let mut tables = Vec::new();
                if kind == Spider::LateRevision {
                    p.outcome = Outcome::Superseded;
                    if let Some(t) = entity_table {
                        history.push((t, p.entities as u64));
                    }
                } else {
                    p.outcome = Outcome::Revised;
                    if let Some(t) = entity_table {
                        history.push((t, cur.entities as u64));
                        tables.push((t, p.entities as i64 - cur.entities as i64));
                    }
                }
                p.effect = Effect { tables, history };
            }
        }
        Some(p)
    }

    /// Records a planned record as sent.
    pub fn commit(&mut self, p: &Planned) {
        let Some(e) = self.pool.get_mut(p.entry) else {
            return;
        };
        match p.kind {
            Spider::Replay | Spider::Reordered => {}
            Spider::Conflict => e.conflicts += 1,
            Spider::SameMillisecond => e.micros_taken.push(p.vt),
            Spider::Revision | Spider::LateRevision | Spider::Recrawl => {
                e.revisions += 1;
                e.versions.push(Version {
                    rec: p.rec.clone(),
                    entities: p.entities,
                });
                if p.outcome == Outcome::Revised {
                    e.current = e.versions.len() - 1;
                }
                e.min_vt = e.min_vt.min(p.vt);
                e.max_vt = e.max_vt.max(p.vt);
            }
        }
    }
}

fn f64_of(rec: &Rec, field: &str) -> Option<f64> {
    rec.get(field).and_then(V::as_f64)
}

/// Another price or book for the same key: the `c`-th conflict, distinct from the first row and from
/// every earlier conflict.
fn conflict(family: &str, rec: &mut Rec, c: u32) {
    let c = f64::from(c);
    match family {
        "market_data" => {
            // The whole quote moves by c ticks (the spread stays).
            let p = f64_of(rec, "price").unwrap_or(1.0);
            let dp = decimals(p);
            let tick = 10f64.powi(-dp);
            for f in ["price", "bid", "ask"] {
                if let Some(x) = f64_of(rec, f) {
                    rec.set(f, V::F64(round_dp(x + c * tick, dp)));
                }
            }
        }
        "crypto_data" => {
            let p = f64_of(rec, "price").unwrap_or(1.0);
            let dp = decimals(p);
            rec.set("price", V::F64(round_dp(p + c * 10f64.powi(-dp), dp)));
        }
        _ => {
            // order_book: the first bid level's size grows.
            if let Some(V::Arr(levels)) = rec.get_mut("bids") {
                if let Some(V::Rec(l)) = levels.first_mut() {
                    let s = l.get("size").and_then(V::as_f64).unwrap_or(1.0);
                    l.set("size", V::F64(round_dp(s + c, 4)));
                }
            }
        }
    }
}

/// Another trade: a new size.
fn trade(family: &str, rec: &mut Rec, rng: &mut ChaCha8Rng) {
    if family == "market_data" {
        rec.set("volume", V::F64(f64::from(rng.gen_range(1..=50) * 100)));
    } else {
        rec.set(
            "volume",
            V::F64(round_dp(rng.gen_range(0.0001..5.0), 6).max(0.000_001)),
        );
    }
}

/// The `r`-th revision of a key: a value derived from the original's and `r`, so that every
/// revision differs from the original and from every other revision.
fn revise(family: &str, rec: &mut Rec, original: &Rec, r: u32) {
    let rf = f64::from(r);
    let orig_f = |f: &str| f64_of(original, f);
    let orig_s = |f: &str| original.get(f).and_then(V::as_str).map(str::to_owned);
    match family {
        "news_article" => {
            let t = orig_s("title").unwrap_or_default();
            rec.set("title", V::Str(format!("UPDATE {r}-{t}")));
        }
        "social_post" => {
            // Engagement grows between crawls.
            let likes = match original.get("likes").and_then(V::inner) {
                Some(V::Long(n)) => *n,
                _ => 0,
            };
            rec.set("likes", V::Long(likes + 7 * i64::from(r)));
        }
        "economic_indicator" => {
            let v = orig_f("value").unwrap_or(0.0);
            rec.set("value", V::F64(round_dp(v + 0.1 * rf, 2)));
        }
        "supply_chain_metric" => {
            let v = orig_f("value").unwrap_or(0.0);
            rec.set("value", V::F64(round_dp(v + 0.5 * rf, 2)));
        }
        "earnings_event" => {
            let v = orig_f("eps_actual")
                .or_else(|| orig_f("eps_estimate"))
                .unwrap_or(1.0);
            rec.set("eps_actual", V::F64(round_dp(v + 0.01 * rf, 2)));
        }
        "sec_filing" => {
            let u = orig_s("url").unwrap_or_default();
            rec.set("url", V::Str(format!("{u}?rev={r}")));
        }
        "feature" => {
            let v = orig_f("value").unwrap_or(0.0);
            rec.set("value", V::F64(round_dp(v + 0.01 * rf, 6)));
        }
        "insight" => {
            let t = orig_s("title").unwrap_or_default();
            rec.set("title", V::Str(format!("{t} (revised {r})")));
        }
        "strategy" => {
            let d = orig_s("description").unwrap_or_default();
            rec.set(
                "description",
                V::Str(format!("{d} Revision {r}: thresholds re-tuned.")),
            );
        }
        _ => {
            // signal: another strength in 0..=1, distinct for every r below 10001.
            let s = orig_f("strength").unwrap_or(0.0);
            let ticks = ((s * 10_000.0).round() as i64 + 97 * i64::from(r)).rem_euclid(10_001);
            rec.set("strength", V::F64(ticks as f64 / 10_000.0));
        }
    }
}

/// A re-crawl's entity extraction differs: one entity more, or one fewer.
fn change_entities(rec: &mut Rec, rng: &mut ChaCha8Rng) {
    let Some(V::Arr(ents)) = rec.get_mut("entities") else {
        return;
    };
    if !ents.is_empty() && rng.gen_bool(0.5) {
        let k = rng.gen_range(0..ents.len());
        ents.remove(k);
        return;
    }
    let taken = |name: &str, ents: &[V]| {
        ents.iter().any(|e| match e {
            V::Rec(r) => r
                .get("name")
                .and_then(V::as_str)
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name)),
            _ => false,
        })
    };
    for _ in 0..64 {
        let (name, etype) = if rng.gen_bool(0.5) {
            (*PEOPLE.choose(rng).unwrap_or(&"Jane Doe"), "person")
        } else {
            (*PLACES.choose(rng).unwrap_or(&"Atlantis"), "location")
        };
        if !taken(name, ents) {
            ents.push(entity(name, etype));
            return;
        }
    }
}
