//! `esurio offsets list | reset`: where each partition resumes (PostgreSQL's `consumed_offsets`,
//! the source of truth) against what the broker holds, and audited moves of those positions.
//!
//! The worker stops a partition whose stored offset is outside the broker's range (see
//! [`crate::source::offsets`]); `list` shows why, `reset` resolves it. Every reset is one
//! transaction with its `offset_resets` row ([`crate::sink::offsets`]). A running worker picks a
//! reset up by itself: a busy partition's next batch fails its compare-and-set and seeks to the new
//! offset; an idle or stopped partition is checked every `kafka.offset_check_interval`.

use crate::config::Settings;
use crate::sink::offsets::{self as store, Reset};
use crate::source::offsets::{classify, Status};
use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a broker request of the command may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// `esurio offsets --help`: what the commands are for, and a typical session.
pub const LONG_ABOUT: &str = "\
Inspect and reset the stored offsets: where each partition resumes.

PostgreSQL's consumed_offsets table, not Kafka's committed offsets, says where each (group, topic,
partition) resumes: it moves in the same transaction as the rows a batch writes. When the broker no
longer holds that position (the topic was deleted and recreated: stored above the broker's high
offset; or retention removed records that were never written: stored below its low offset), the
worker stops that partition with an error instead of skipping records (or, with
kafka.on_offset_gap = reset_to_earliest, resets it itself), and these commands resolve it.

A typical session after a topic was recreated:

  esurio offsets list --topic market_data
  esurio offsets reset --topic market_data --to-earliest --dry-run
  esurio offsets reset --topic market_data --to-earliest --reason 'topic recreated on 2024-05-01'

A running worker notices a reset by itself (within kafka.offset_check_interval, default 30s): no
restart is needed. Every reset is recorded in the offset_resets table (who, when, why, the old and
new offset, the broker's low and high offsets at that moment).";

/// `esurio offsets list | reset` (the help text is [`LONG_ABOUT`]).
#[derive(Debug, clap::Args)]
pub struct OffsetsArgs {
    #[command(subcommand)]
    command: OffsetsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum OffsetsCommand {
    /// Show each stored offset against the broker: low, high, lag and a status.
    ///
    /// One line per (group, topic, partition) the database has, and per partition the broker has
    /// but the database does not. STATUS is: ok (written up to the broker's high offset), behind
    /// (LAG records wait), recreated (stored above the high offset: the topic was deleted and
    /// recreated, or truncated; the worker stops the partition), gap (stored below the low offset:
    /// retention removed records that were never written; the worker stops the partition), new
    /// (no stored offset yet: starts at the beginning), missing (the broker has no such
    /// topic or partition).
    List {
        /// A family name (market_data: kafka.topic_prefix is prepended) or a full topic name.
        /// Default: every topic with a stored offset, and every configured topic.
        #[arg(long, value_name = "FAMILY_OR_TOPIC")]
        topic: Option<String>,
        /// The consumer group (default: kafka.group_id).
        #[arg(long)]
        group: Option<String>,
    },
    /// Set where partitions resume, recording the change in offset_resets.
    ///
    /// Sets consumed_offsets.next_offset of the topic's partitions (all of them, or --partition),
    /// inserting the row if there is none, in one transaction with its audit row. Records between
    /// the old and the new offset are skipped (new > old) or read again (new < old; rows already
    /// written are recognized by their natural keys and counted as duplicates). Offsets outside the
    /// broker's low..high range are refused. Prints what was done, one line per partition.
    ///
    /// Examples:
    ///
    ///   esurio offsets reset --topic market_data --to-earliest --reason "topic recreated"
    ///   esurio offsets reset --topic news_article --partition 3 --to-offset 1200
    ///   esurio offsets reset --topic social_post --to-time 2h --dry-run
    ///   esurio offsets reset --topic social_post --to-time 2024-05-01T12:00:00Z
    #[command(verbatim_doc_comment, group(clap::ArgGroup::new("target").required(true).multiple(false)
        .args(["to_earliest", "to_latest", "to_offset", "to_time"])))]
    Reset {
        /// A family name (kafka.topic_prefix is prepended) or a full topic name.
        #[arg(long, value_name = "FAMILY_OR_TOPIC")]
        topic: String,
        /// Only this partition (default: every partition the broker has for the topic).
        #[arg(long)]
        partition: Option<i32>,
        /// To the broker's low offset: the oldest record it still holds.
        #[arg(long)]
        to_earliest: bool,
        /// To the broker's high offset: skip everything there now.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (must be within the broker's low..high).
        #[arg(long, value_name = "N")]
        to_offset: Option<i64>,
        /// To the first record at or after this time: RFC 3339 (2024-05-01T12:00:00Z) or a
        /// duration ago (90m, 2h, 1day). Uses the broker's offsets-for-times; past the last record
        /// it is the high offset.
        #[arg(long, value_name = "RFC3339_OR_DURATION_AGO")]
        to_time: Option<String>,
        /// Show what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Why, for the audit trail (offset_resets.reason).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// The consumer group (default: kafka.group_id).
        #[arg(long)]
        group: Option<String>,
    },
}

/// Runs `esurio offsets ...`.
///
/// # Errors
/// The database or the broker cannot be reached, the topic does not exist, a target offset is
/// outside the broker's range, or the schema is not migrated.
pub async fn run(settings: &Settings, args: OffsetsArgs) -> anyhow::Result<()> {
    match args.command {
        OffsetsCommand::List { topic, group } => {
            let group = group.unwrap_or_else(|| settings.kafka.group_id.clone());
            let topic = topic.map(|t| resolve_topic(settings, &t));
            list(settings, &group, topic).await
        }
        OffsetsCommand::Reset {
            topic,
            partition,
            to_earliest,
            to_latest,
            to_offset,
            to_time,
            dry_run,
            reason,
            group,
        } => {
            let target = if to_earliest {
                Target::Earliest
            } else if to_latest {
                Target::Latest
            } else if let Some(n) = to_offset {
                Target::Offset(n)
            } else if let Some(t) = to_time {
                Target::Time(parse_time(&t, chrono::Utc::now())?)
            } else {
                bail!("one of --to-earliest, --to-latest, --to-offset, --to-time is required");
            };
            let group = group.unwrap_or_else(|| settings.kafka.group_id.clone());
            let topic = resolve_topic(settings, &topic);
            reset(
                settings,
                &group,
                &topic,
                partition,
                target,
                dry_run,
                reason.as_deref(),
            )
            .await
        }
    }
}

/// A family name becomes its topic (with the prefix); anything else is taken as a topic name.
fn resolve_topic(settings: &Settings, name: &str) -> String {
    if crate::records::family(name).is_some() {
        settings.topic(name)
    } else {
        name.to_owned()
    }
}

/// `--to-time`: RFC 3339, or a duration before `now`.
fn parse_time(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let ago = humantime::parse_duration(s).with_context(|| {
        format!(
            "--to-time {s:?} is neither RFC 3339 (2024-05-01T12:00:00Z) nor a duration ago (2h)"
        )
    })?;
    let ago = chrono::Duration::from_std(ago).context("--to-time: the duration is too long")?;
    now.checked_sub_signed(ago)
        .context("--to-time: the duration reaches before any representable time")
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Time(chrono::DateTime<chrono::Utc>),
}

impl Target {
    fn how(self) -> &'static str {
        match self {
            Target::Earliest => "manual:earliest",
            Target::Latest => "manual:latest",
            Target::Offset(_) => "manual:offset",
            Target::Time(_) => "manual:time",
        }
    }
}

fn consumer(settings: &Settings) -> anyhow::Result<BaseConsumer> {
    let k = &settings.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", "esurio-offsets");
    for (key, v) in &k.librdkafka {
        c.set(key, v);
    }
    c.create()
        .context("cannot create a Kafka client (kafka.brokers)")
}

/// The broker's partitions of a topic with their low and high offsets; empty if it has no such
/// topic.
fn broker_partitions(c: &BaseConsumer, topic: &str) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let md = c
        .fetch_metadata(Some(topic), BROKER_TIMEOUT)
        .with_context(|| format!("cannot fetch the metadata of {topic}"))?;
    let mut out = BTreeMap::new();
    for t in md.topics().iter().filter(|t| t.error().is_none()) {
        for p in t.partitions() {
            let w = c
                .fetch_watermarks(topic, p.id(), BROKER_TIMEOUT)
                .with_context(|| format!("cannot fetch the offsets of {topic}[{}]", p.id()))?;
            out.insert(p.id(), w);
        }
    }
    Ok(out)
}

async fn db(settings: &Settings) -> anyhow::Result<deadpool_postgres::Object> {
    let pool = crate::sink::pool::build(&settings.database, "esurio-offsets")?;
    pool.get()
        .await
        .context("cannot connect to the database (database.url)")
}

async fn list(settings: &Settings, group: &str, topic: Option<String>) -> anyhow::Result<()> {
    let client = db(settings).await?;
    let stored = store::list(&client, group, topic.as_deref())
        .await
        .context("cannot read consumed_offsets (was `esurio migrate` run?)")?;
    let topics: BTreeSet<String> = match &topic {
        Some(t) => [t.clone()].into(),
        None => stored
            .iter()
            .map(|s| s.topic.clone())
            .chain(settings.kafka.topics.iter().map(|f| settings.topic(f)))
            .collect(),
    };
    let settings2 = settings.clone();
    let broker: BTreeMap<String, BTreeMap<i32, (i64, i64)>> =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let c = consumer(&settings2)?;
            topics
                .into_iter()
                .map(|t| broker_partitions(&c, &t).map(|p| (t, p)))
                .collect()
        })
        .await??;

    let mut rows = vec![[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "STORED",
        "LOW",
        "HIGH",
        "LAG",
        "STATUS",
        "UPDATED",
    ]
    .map(String::from)
    .to_vec()];
    let mut seen = BTreeSet::new();
    for s in &stored {
        seen.insert((s.topic.clone(), s.partition));
        let marks = broker.get(&s.topic).and_then(|b| b.get(&s.partition));
        let (low, high, lag, status) = match marks {
            Some(&(lo, hi)) => {
                let st = classify(Some(s.next_offset), lo, hi);
                let lag = if st.is_gap() {
                    "-".into()
                } else {
                    (hi - s.next_offset).to_string()
                };
                (lo.to_string(), hi.to_string(), lag, st.as_str())
            }
            None => ("-".into(), "-".into(), "-".into(), "missing"),
        };
        rows.push(vec![
            group.to_owned(),
            s.topic.clone(),
            s.partition.to_string(),
            s.next_offset.to_string(),
            low,
            high,
            lag,
            status.to_owned(),
            s.updated_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ]);
    }
    for (t, parts) in &broker {
        for (p, (lo, hi)) in parts {
            if seen.contains(&(t.clone(), *p)) {
                continue;
            }
            rows.push(vec![
                group.to_owned(),
                t.clone(),
                p.to_string(),
                "-".into(),
                lo.to_string(),
                hi.to_string(),
                (hi - lo).to_string(),
                Status::New.as_str().into(),
                "-".into(),
            ]);
        }
    }
    rows[1..].sort_by(|a, b| {
        (&a[1], a[2].parse::<i32>().unwrap_or(0)).cmp(&(&b[1], b[2].parse::<i32>().unwrap_or(0)))
    });
    print!("{}", table(&rows));
    let gaps: Vec<&Vec<String>> = rows[1..]
        .iter()
        .filter(|r| r[7] == "recreated" || r[7] == "gap")
        .collect();
    if !gaps.is_empty() {
        println!(
            "\n{} partition(s) cannot resume without skipping records (recreated: {}; gap: {}).\n\
             The worker keeps them stopped. Resolve with e.g.\n  esurio offsets reset --topic {} --to-earliest --reason '...'",
            gaps.len(),
            Status::Recreated.explain(),
            Status::Gap.explain(),
            gaps[0][1]
        );
    }
    Ok(())
}

/// One partition's planned reset.
struct Plan {
    partition: i32,
    low: i64,
    high: i64,
    new: i64,
}

async fn reset(
    settings: &Settings,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    target: Target,
    dry_run: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let settings2 = settings.clone();
    let topic2 = topic.to_owned();
    let plans: Vec<Plan> = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let c = consumer(&settings2)?;
        let parts = broker_partitions(&c, &topic2)?;
        if parts.is_empty() {
            bail!("the broker has no topic {topic2:?}");
        }
        let chosen: Vec<(i32, (i64, i64))> = match partition {
            Some(p) => match parts.get(&p) {
                Some(w) => vec![(p, *w)],
                None => bail!(
                    "{topic2} has no partition {p} (it has {})",
                    parts.len()
                ),
            },
            None => parts.into_iter().collect(),
        };
        let times = match target {
            Target::Time(t) => {
                let mut tpl = TopicPartitionList::new();
                for (p, _) in &chosen {
                    tpl.add_partition_offset(&topic2, *p, Offset::Offset(t.timestamp_millis()))?;
                }
                let r = c
                    .offsets_for_times(tpl, BROKER_TIMEOUT)
                    .with_context(|| format!("cannot look up offsets by time in {topic2}"))?;
                Some(r)
            }
            _ => None,
        };
        chosen
            .into_iter()
            .map(|(p, (low, high))| {
                let new = match target {
                    Target::Earliest => low,
                    Target::Latest => high,
                    Target::Offset(n) => {
                        if n < low || n > high {
                            bail!("--to-offset {n} is outside {topic2}[{p}]'s range {low}..{high}: the broker holds no such position");
                        }
                        n
                    }
                    Target::Time(_) => {
                        let e = times
                            .as_ref()
                            .and_then(|t| t.find_partition(&topic2, p))
                            .context("the broker returned no offset for a partition")?;
                        if let Err(err) = e.error() {
                            bail!("cannot look up {topic2}[{p}] by time: {err}");
                        }
                        match e.offset() {
                            // Past the last record: nothing at or after that time yet.
                            Offset::End | Offset::Invalid => high,
                            Offset::Offset(o) => o.clamp(low, high),
                            other => bail!("unexpected offset {other:?} for {topic2}[{p}]"),
                        }
                    }
                };
                Ok(Plan { partition: p, low, high, new })
            })
            .collect()
    })
    .await??;

    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let mut client = db(settings).await?;
    let mut rows = vec![[
        "TOPIC",
        "PARTITION",
        "OLD",
        "NEW",
        "LOW",
        "HIGH",
        "EFFECT",
        "DONE",
    ]
    .map(String::from)
    .to_vec()];
    for plan in &plans {
        let r = Reset {
            group,
            topic,
            partition: plan.partition,
            expect: None,
            new_offset: plan.new,
            low: plan.low,
            high: plan.high,
            how: target.how(),
            reason,
            os_user: os_user.as_deref(),
        };
        let peek = store::apply(&mut client, &r, dry_run)
            .await
            .context("cannot reset (was `esurio migrate` run?)")?;
        let done = if peek.old == Some(plan.new) {
            "unchanged"
        } else if dry_run {
            "dry run: nothing changed"
        } else {
            "reset"
        };
        let effect = match peek.old {
            Some(old) if old == plan.new => "-".to_owned(),
            Some(old) if old > plan.high => "recreated topic: start over".to_owned(),
            Some(old) if plan.new > old => format!("skip {}", plan.new - old),
            Some(old) => format!("re-read {}", old - plan.new),
            None => "new row".to_owned(),
        };
        rows.push(vec![
            topic.to_owned(),
            plan.partition.to_string(),
            peek.old.map_or("-".into(), |o| o.to_string()),
            plan.new.to_string(),
            plan.low.to_string(),
            plan.high.to_string(),
            effect,
            done.to_owned(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

/// Left-aligned columns, two spaces apart; the first row is the header.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_time_takes_rfc3339_or_a_duration_ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_time("2024-05-01T10:30:00+00:00", now).unwrap(),
            now - chrono::Duration::minutes(90)
        );
        assert_eq!(
            parse_time("90m", now).unwrap(),
            now - chrono::Duration::minutes(90)
        );
        let err = format!("{:#}", parse_time("yesterday-ish", now).unwrap_err());
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["ccc".into(), "d".into()],
        ]);
        assert_eq!(t, "A    BB\nccc  d\n");
    }
}
