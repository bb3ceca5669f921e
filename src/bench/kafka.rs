//! The benchmark's Kafka side: its topics, filling them with simulated records (as fast as the
//! broker takes them, or paced at a fixed rate with explicit timestamps), and reading them back.
//!
//! The records come from the simulator's library API ([`crate::simulate::generate`]). Its own
//! producer helpers are private to `esurio simulate` and can neither pin a partition nor set a
//! timestamp, which the latency measurement needs, so the producer here is the benchmark's own
//! (configured like the simulator's for the bulk fill).

use crate::config::Settings;
use crate::records::FamilySpec;
use crate::simulate::{generate, Expect, GenOptions};
use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn client_config(settings: &Settings, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("client.id", client_id);
    for (k, v) in &settings.kafka.librdkafka {
        c.set(k, v);
    }
    c
}

fn admin(settings: &Settings) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    client_config(settings, "esurio-bench-admin")
        .create()
        .context("cannot create the Kafka admin client")
}

fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)))
}

/// Creates the topics (which must not exist yet: the benchmark measures from offset 0) and their
/// dead-letter topics.
pub async fn create_topics(
    settings: &Settings,
    topics: &[String],
    partitions: i32,
) -> anyhow::Result<()> {
    let mut names: Vec<(String, i32)> = Vec::new();
    for t in topics {
        names.push((t.clone(), partitions));
        names.push((format!("{t}{}", settings.kafka.dlq_suffix), 1));
    }
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(-1)))
        .collect();
    for r in admin(settings)?
        .create_topics(&new, &admin_opts())
        .await
        .with_context(|| format!("cannot create topics on {}", settings.kafka.brokers))?
    {
        match r {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                bail!("topic {name} exists already: the benchmark needs fresh topics")
            }
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Deletes the topics and their dead-letter topics (best effort: failures are reported, not fatal).
pub async fn delete_topics(settings: &Settings, topics: &[String]) {
    let mut names: Vec<String> = Vec::new();
    for t in topics {
        names.push(t.clone());
        names.push(format!("{t}{}", settings.kafka.dlq_suffix));
        names.push(format!("{t}{}", settings.enrichment.topic_suffix));
    }
    delete_topics_only(settings, &names).await;
}

/// Deletes exactly these topics (best effort; a missing one is fine).
pub async fn delete_topics_only(settings: &Settings, names: &[String]) {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let res = match admin(settings) {
        Ok(a) => a
            .delete_topics(&refs, &admin_opts())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    match res {
        Ok(results) => {
            for r in results {
                if let Err((name, code)) = r {
                    if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                        eprintln!("bench: warning: cannot delete topic {name}: {code}");
                    }
                }
            }
        }
        Err(e) => eprintln!("bench: warning: cannot delete topics: {e}"),
    }
}

/// One acknowledged record: where it landed and the timestamp it carries.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// Index into the topic list the [`Tracker`] was made with.
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    pub ts_ms: i64,
}

/// Counts deliveries and, if asked, keeps every record's coordinates (callbacks run on the
/// producer's polling thread).
pub struct Tracker {
    topics: Vec<String>,
    keep: bool,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    acks: Mutex<Vec<Ack>>,
}

impl ClientContext for Tracker {}

impl ProducerContext for Tracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if self.keep {
                    let topic = self
                        .topics
                        .iter()
                        .position(|t| t == m.topic())
                        .unwrap_or(usize::MAX);
                    let ack = Ack {
                        topic,
                        partition: m.partition(),
                        offset: m.offset(),
                        ts_ms: m.timestamp().to_millis().unwrap_or(0),
                    };
                    self.acks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ack);
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// A producer: `bulk` is configured like `esurio simulate`'s (large lz4 batches, 20 ms linger);
/// otherwise for latency (5 ms linger, librdkafka's default), keeping every record's coordinates.
pub fn producer(
    settings: &Settings,
    topics: &[String],
    bulk: bool,
) -> anyhow::Result<ThreadedProducer<Tracker>> {
    let mut c = client_config(settings, "esurio-bench");
    c.set("compression.type", "lz4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    if bulk {
        c.set("linger.ms", "20").set("batch.num.messages", "10000");
    } else {
        c.set("linger.ms", "5");
    }
    for (k, v) in &settings.kafka.librdkafka {
        c.set(k, v);
    }
    c.create_with_context(Tracker {
        topics: topics.to_vec(),
        keep: !bulk,
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        acks: Mutex::new(Vec::new()),
    })
    .context("cannot create the Kafka producer")
}

/// Sends one record, waiting while the producer's queue is full.
fn send(
    p: &ThreadedProducer<Tracker>,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: &[u8],
    ts_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(p) = partition {
        rec = rec.partition(p);
    }
    if let Some(ts) = ts_ms {
        rec = rec.timestamp(ts);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e).with_context(|| format!("cannot produce to {topic}")),
        }
    }
}

/// Flushes and checks that every record sent was acknowledged.
pub fn finish(p: &ThreadedProducer<Tracker>, sent: u64) -> anyhow::Result<()> {
    p.flush(Duration::from_secs(180))
        .context("cannot flush the Kafka producer")?;
    let ctx = p.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        bail!("{failed} records were not delivered (first error: {first})");
    }
    if delivered != sent {
        bail!("{delivered} records were acknowledged, {sent} sent");
    }
    Ok(())
}

/// Takes the coordinates of the records acknowledged so far.
pub fn take_acks(p: &ThreadedProducer<Tracker>) -> Vec<Ack> {
    std::mem::take(&mut *p.context().acks.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What a fill produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Filled {
    /// Records per topic.
    pub topics: BTreeMap<String, u64>,
    /// Rows the records must produce, per table.
    pub rows: BTreeMap<String, u64>,
    pub records: u64,
    pub total_rows: u64,
    pub secs: f64,
}

/// One family's share of a fill: its index, records produced, rows per table.
type FamilyFill = (usize, u64, BTreeMap<String, u64>);

/// Generates `counts[i]` valid records of `families[i]` and produces them to `topics[i]` (keyed
/// by the family's grouping key, partitioned by librdkafka's default partitioner, as a spider
/// would), on a few threads.
pub fn fill(
    settings: &Settings,
    families: &[&'static FamilySpec],
    topics: &[String],
    counts: &[usize],
    opts: &[GenOptions],
) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let p = producer(settings, topics, true)?;
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let total: usize = counts.iter().sum();
    let results: Mutex<Vec<FamilyFill>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(families.len())
        .max(1);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = families.get(k) else {
                            return Ok(());
                        };
                        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
                        let mut n = 0u64;
                        for r in generate(f, counts[k], &opts[k])? {
                            let Expect::Valid { rows: r_rows } = &r.expect else {
                                bail!("the simulator made an invalid {} record", f.name);
                            };
                            for (t, c) in r_rows {
                                *rows.entry((*t).to_owned()).or_default() += *c as u64;
                            }
                            let payload = r.payload.as_deref().unwrap_or_default();
                            send(&p, &topics[k], None, r.key.as_deref(), payload, None)?;
                            n += 1;
                            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if d % 250_000 == 0 {
                                eprintln!(
                                    "bench: produced {d}/{total} records ({:.0}/s)",
                                    d as f64 / started.elapsed().as_secs_f64().max(1e-9)
                                );
                            }
                        }
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((k, n, rows));
                    }
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        Ok(())
    })?;
    let mut out = Filled::default();
    for (k, n, rows) in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        out.topics.insert(topics[k].clone(), n);
        out.records += n;
        for (t, c) in rows {
            out.total_rows += c;
            *out.rows.entry(t).or_default() += c;
        }
    }
    finish(&p, out.records)?;
    out.secs = started.elapsed().as_secs_f64();
    Ok(out)
}

/// A record for the paced producer.
pub struct Paced {
    pub topic: usize,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Sends `recs` at `rate` records per second (record `i` is due at `start + i / rate`; what is
/// due within the next millisecond goes out together), each stamped with its send time (ms) as
/// its CreateTime. Returns the seconds it took and how late the last record went out (s).
pub fn send_paced(
    p: &ThreadedProducer<Tracker>,
    topics: &[String],
    recs: &[Paced],
    rate: f64,
) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let mut worst_late = 0.0f64;
    for (i, r) in recs.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        } else if now > due {
            worst_late = worst_late.max((now - due).as_secs_f64());
        }
        let ts = chrono::Utc::now().timestamp_millis();
        send(
            p,
            &topics[r.topic],
            Some(r.partition),
            r.key.as_deref(),
            &r.payload,
            Some(ts),
        )?;
    }
    Ok((start.elapsed().as_secs_f64(), worst_late))
}

/// Reads every record of the topics from the beginning to their current end and hands each to
/// `f(topic index, partition, offset, payload)`.
pub fn read_back(
    settings: &Settings,
    topics: &[String],
    mut f: impl FnMut(usize, i32, i64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let c: BaseConsumer = client_config(settings, "esurio-bench-reader")
        .set(
            "group.id",
            format!("esurio-bench-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .context("cannot create the Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    // (topic index, partition) -> end offset still to reach.
    let mut ends: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    for (k, t) in topics.iter().enumerate() {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(30))
            .with_context(|| format!("cannot read the metadata of {t}"))?;
        for mt in md.topics() {
            for p in mt.partitions() {
                let (lo, hi) = c
                    .fetch_watermarks(t, p.id(), Duration::from_secs(30))
                    .with_context(|| format!("cannot read the watermarks of {t}[{}]", p.id()))?;
                if hi > lo {
                    ends.insert((k, p.id()), hi);
                    tpl.add_partition_offset(t, p.id(), Offset::Beginning)?;
                }
            }
        }
    }
    c.assign(&tpl).context("cannot assign the partitions")?;
    let mut n = 0u64;
    let mut idle = Instant::now();
    while !ends.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = Instant::now();
                let k = topics
                    .iter()
                    .position(|t| t == m.topic())
                    .context("a record of an unknown topic")?;
                let key = (k, m.partition());
                let Some(end) = ends.get(&key).copied() else {
                    continue;
                };
                f(
                    k,
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default(),
                )?;
                n += 1;
                if m.offset() + 1 >= end {
                    ends.remove(&key);
                }
            }
            Some(Err(e)) => bail!("cannot read the topics back: {e}"),
            None if idle.elapsed() > Duration::from_secs(60) => {
                bail!(
                    "reading the topics back stalled ({} partitions unfinished)",
                    ends.len()
                )
            }
            None => {}
        }
    }
    Ok(n)
}
