#![allow(dead_code)] // shared by the `it` and `faults` test binaries; each uses a part
//! The test harness: a private database, topic prefix and group per test, and helpers to run the
//! `esurio` binary and read back what it wrote.

use esurio::decode::registry_stub::{self, RegistryStub};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// A record to produce: its key, and its value (`None`: a tombstone).
pub type Keyed<'a> = (Option<&'a [u8]>, Option<Vec<u8>>);

pub const TABLES: &[&str] = &[
    "market_data",
    "crypto_data",
    "order_book",
    "news_article",
    "news_entity",
    "social_post",
    "social_entity",
    "economic_indicator",
    "supply_chain_metric",
    "earnings_event",
    "sec_filing",
    "feature",
    "insight",
    "strategy",
    "signal",
];

/// The history tables of the revise families (sql/migrations/0004_*.sql).
pub const HISTORY_TABLES: &[&str] = &[
    "news_article_history",
    "news_entity_history",
    "social_post_history",
    "social_entity_history",
    "economic_indicator_history",
    "supply_chain_metric_history",
    "earnings_event_history",
    "sec_filing_history",
    "feature_history",
    "insight_history",
    "strategy_history",
    "signal_history",
];

/// The per-topic outcome counts of a simulate summary and the `ingest_batches` column each is
/// compared with.
pub const OUTCOMES: &[(&str, &str)] = &[
    ("duplicates", "duplicates"),
    ("conflicting", "conflicts"),
    ("revised", "revised"),
    ("superseded", "superseded"),
];

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run the tests through scripts/test (it starts the stack and exports it)")
    })
}

pub struct TestEnv {
    pub name: String,
    pub db_url: String,
    admin_url: String,
    db_name: String,
    pub brokers: String,
    pub prefix: String,
    pub group: String,
    pub registry: Option<RegistryStub>,
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}_{}_{:x}", std::process::id(), nanos & 0xffff_ffff)
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

impl TestEnv {
    /// A fresh database (migrated), topic prefix and group; with a schema registry stub if asked.
    pub async fn new(name: &str, with_registry: bool) -> Self {
        let admin_url = env("ESURIO__DATABASE__URL");
        let id = unique(name);
        let db_name = format!("it_{id}").to_lowercase();
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let env = TestEnv {
            name: name.to_owned(),
            db_url: format!("{base}/{db_name}"),
            admin_url,
            db_name,
            brokers: env("ESURIO__KAFKA__BROKERS"),
            prefix: format!("it.{id}."),
            group: format!("it-{id}"),
            registry: with_registry.then(|| registry_stub::serve(0).unwrap()),
        };
        let out = env.esurio(&["migrate"]).output().unwrap();
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    /// The `esurio` binary with this test's settings in its environment.
    pub fn esurio(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_esurio"));
        c.args(args)
            .env(
                "ESURIO_CONFIG_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
            )
            .env("ESURIO__DATABASE__URL", &self.db_url)
            .env("ESURIO__KAFKA__BROKERS", &self.brokers)
            .env("ESURIO__KAFKA__TOPIC_PREFIX", &self.prefix)
            .env("ESURIO__KAFKA__GROUP_ID", &self.group)
            .env("ESURIO__KAFKA__SESSION_TIMEOUT", "10s")
            .env("ESURIO__BATCH__LINGER", "100ms")
            .env("ESURIO__DATABASE__POOL_SIZE", "4")
            .env("ESURIO__DATABASE__MAX_OVERFLOW", "2")
            .env("RUST_LOG", "warn,esurio=info")
            .stdin(Stdio::null());
        if let Some(r) = &self.registry {
            c.env("ESURIO__DECODE__SCHEMA_REGISTRY_URL", r.url());
        }
        c
    }

    /// Runs `esurio simulate` and returns its JSON summary.
    pub fn simulate(&self, args: &[&str]) -> Value {
        let mut all = vec!["simulate"];
        all.extend_from_slice(args);
        let out = self.esurio(&all).output().unwrap();
        assert!(
            out.status.success(),
            "simulate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "simulate printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs the worker until it is caught up and idle; panics if it fails or hangs. Its log goes
    /// to a file (a pipe nobody reads would fill and block the worker), printed on failure.
    pub fn run_until_idle(&self) -> Output {
        self.run_until_idle_with(&[])
    }

    pub fn run_until_idle_with(&self, extra_env: &[(&str, &str)]) -> Output {
        self.run_until_idle_args(&[], extra_env)
    }

    /// [`TestEnv::run_until_idle`] with extra arguments to `esurio run` and extra environment.
    pub fn run_until_idle_args(&self, extra_args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let mut args = vec!["run", "--exit-when-idle", "3s"];
        args.extend_from_slice(extra_args);
        let (child, log) = self.spawn_logged(&args, extra_env);
        let out = wait_with_timeout(child, Duration::from_secs(900));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            out.status.success(),
            "run failed ({}): {}",
            out.status,
            tail(&text, 60)
        );
        let _ = std::fs::remove_file(&log);
        Output {
            status: out.status,
            stdout: out.stdout,
            stderr: text.into_bytes(),
        }
    }

    pub fn spawn_worker(&self) -> Child {
        self.esurio(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub async fn db(&self) -> Client {
        connect(&self.db_url).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    pub async fn table_counts(&self) -> BTreeMap<String, i64> {
        self.counts(TABLES).await
    }

    /// Rows per history table.
    pub async fn history_counts(&self) -> BTreeMap<String, i64> {
        self.counts(HISTORY_TABLES).await
    }

    /// `ingest_batches` outcome totals: (duplicates, revised, superseded, conflicts).
    pub async fn outcome_totals(&self) -> (i64, i64, i64, i64) {
        let r = self
            .db()
            .await
            .query_one(
                "SELECT coalesce(sum(duplicates), 0)::bigint, coalesce(sum(revised), 0)::bigint,
                        coalesce(sum(superseded), 0)::bigint, coalesce(sum(conflicts), 0)::bigint
                   FROM ingest_batches",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }

    async fn counts(&self, tables: &[&str]) -> BTreeMap<String, i64> {
        let db = self.db().await;
        let mut m = BTreeMap::new();
        for t in tables {
            let n: i64 = db
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .unwrap()
                .get(0);
            m.insert(t.to_string(), n);
        }
        m
    }

    /// What differs from the simulator's expectations beyond the tables (empty: nothing): rows per
    /// history table, and per topic the outcome counts of `ingest_batches` (duplicates, conflicts,
    /// revised, superseded) against the summary's, scaled by `runs` (the same seed produced that
    /// many times: every record of a later run is a duplicate, or a conflict again). `outcomes`
    /// names which counts to compare.
    pub async fn history_and_outcome_mismatches(
        &self,
        summary: &Value,
        runs: i64,
        outcomes: &[&str],
    ) -> Vec<String> {
        let mut bad = Vec::new();
        for (t, n) in self.history_counts().await {
            let want = summary["history"]
                .get(&t)
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if n != want {
                bad.push(format!("{t}: {n} rows, expected {want}"));
            }
        }
        let db = self.db().await;
        for (family, t) in summary["topics"].as_object().unwrap() {
            for (field, column) in OUTCOMES.iter().filter(|(f, _)| outcomes.contains(f)) {
                let got: i64 = db
                    .query_one(
                        &format!(
                            "SELECT coalesce(sum({column}), 0)::bigint FROM ingest_batches WHERE topic = $1"
                        ),
                        &[&self.topic(family)],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let once = t[*field].as_i64().unwrap_or(0);
                let want = match *field {
                    // A rerun: every valid record that is not a conflict is a duplicate.
                    "duplicates" => once + (runs - 1) * (t["valid"].as_i64().unwrap_or(0)),
                    // A rerun's conflicts are conflicts again (they differ from the first row).
                    "conflicting" => once * runs,
                    _ => once,
                };
                if got != want {
                    bad.push(format!("{family}: {column} {got}, expected {want}"));
                }
            }
        }
        bad
    }

    pub fn topic(&self, family: &str) -> String {
        format!("{}{family}", self.prefix)
    }

    /// Creates a family's topic unless it exists (the broker does not auto-create topics), with
    /// room for records up to 16 MiB: tests send records larger than the worker accepts.
    pub fn create_topic(&self, family: &str, partitions: i32) {
        create_topic(
            &self.brokers,
            &self.topic(family),
            partitions,
            &[("max.message.bytes", "16777216")],
        );
    }

    /// Produces raw payloads to one partition of a family's topic (created with 4 partitions if
    /// it does not exist).
    pub fn produce(&self, family: &str, partition: i32, payloads: &[Vec<u8>]) {
        let records: Vec<(Vec<u8>, Option<i64>)> =
            payloads.iter().map(|v| (v.clone(), None)).collect();
        self.produce_at(family, partition, &records);
    }

    /// Produces raw payloads to one partition of a family's topic (created with 4 partitions if
    /// it does not exist), each with its Kafka timestamp (ms since the epoch; `None`: the
    /// producer's clock), in order.
    pub fn produce_at(&self, family: &str, partition: i32, records: &[(Vec<u8>, Option<i64>)]) {
        self.create_topic(family, 4);
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "16777216")
            .create()
            .unwrap();
        let topic = self.topic(family);
        for (v, ts) in records {
            let mut r = BaseRecord::<(), [u8]>::to(&topic)
                .payload(v)
                .partition(partition);
            if let Some(ts) = ts {
                r = r.timestamp(*ts);
            }
            p.send(r).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Produces `(key, value)` records in order to partition 0 of a family's topic (created with
    /// `partitions` if missing); a `None` value is a tombstone.
    pub fn produce_keyed(&self, family: &str, partitions: i32, records: &[Keyed<'_>]) {
        self.create_topic(family, partitions);
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "16777216")
            .create()
            .unwrap();
        let topic = self.topic(family);
        for (k, v) in records {
            let mut r = BaseRecord::<[u8], [u8]>::to(&topic).partition(0);
            if let Some(k) = k {
                r = r.key(k);
            }
            if let Some(v) = v {
                r = r.payload(v);
            }
            p.send(r).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Sum over partitions of (high - low) watermarks of a topic: how many records it holds.
    pub fn topic_size(&self, topic: &str) -> i64 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}-probe", self.group))
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut n = 0;
        for t in md.topics() {
            for p in t.partitions() {
                let (lo, hi) = c
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .unwrap();
                n += hi - lo;
            }
        }
        n
    }

    /// The exactness check shared by the tests: rows per table equal what the simulator says the
    /// valid records produce, quarantine equals the invalid records, no source offset is written
    /// twice, stored offsets equal the end of every topic.
    pub async fn assert_exact(
        &self,
        expected_tables: &Value,
        expected_quarantine: i64,
        produced: &BTreeMap<String, i64>,
    ) {
        let counts = self.table_counts().await;
        for (t, n) in &counts {
            let want = expected_tables.get(t).and_then(Value::as_i64).unwrap_or(0);
            assert_eq!(*n, want, "rows in {t}");
        }
        let q = self.count("SELECT count(*) FROM quarantine").await;
        assert_eq!(q, expected_quarantine, "quarantined records");
        for t in TABLES.iter().filter(|t| !t.ends_with("_entity")) {
            let dup = self
                .count(&format!(
                    "SELECT count(*) - count(DISTINCT (source_topic, source_partition, source_offset)) FROM {t}"
                ))
                .await;
            assert_eq!(dup, 0, "two rows of {t} from one source offset");
        }
        for t in TABLES.iter().filter(|t| !t.ends_with("_entity")) {
            let overlap = self
                .count(&format!(
                    "SELECT count(*) FROM quarantine JOIN {t} USING (source_topic, source_partition, source_offset)"
                ))
                .await;
            assert_eq!(overlap, 0, "a record of {t} both written and quarantined");
        }
        let db = self.db().await;
        for (family, n) in produced {
            let topic = self.topic(family);
            let stored: i64 = db
                .query_one(
                    "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2",
                    &[&self.group, &topic],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(stored, *n, "stored offsets of {topic} vs records produced");
            assert_eq!(
                stored,
                self.topic_size(&topic),
                "stored offsets of {topic} vs end offsets"
            );
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Best effort: keep the database when the test failed, for a post-mortem.
        if std::thread::panicking() {
            eprintln!(
                "{}: keeping database {} ({})",
                self.name, self.db_name, self.db_url
            );
            return;
        }
        let admin = self.admin_url.clone();
        let db = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Creates a topic unless it exists, with per-topic `config` (e.g. `max.message.bytes`).
pub fn create_topic(brokers: &str, topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Its own runtime on its own thread: callers may be sync code inside a test's runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .unwrap();
            let mut new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
            for (k, v) in &config {
                new = new.set(k, v);
            }
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            for r in admin.create_topics([&new], &opts).await.unwrap() {
                match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => panic!("cannot create topic {name}: {code}"),
                }
            }
        });
    })
    .join()
    .unwrap();
}

/// Waits for a child, killing it after `limit`.
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "process did not exit within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Per family: records produced, from a simulate summary.
pub fn produced(summary: &Value) -> BTreeMap<String, i64> {
    summary["topics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["produced"].as_i64().unwrap()))
        .collect()
}

impl TestEnv {
    /// Runs `esurio <args>` with extra environment until it exits (killed after `limit`), and
    /// returns its exit status and log, whatever the outcome.
    pub fn run_logged(
        &self,
        args: &[&str],
        extra_env: &[(&str, &str)],
        limit: Duration,
    ) -> (std::process::ExitStatus, String) {
        let (child, log) = self.spawn_logged(args, extra_env);
        let out = wait_with_timeout(child, limit);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        (out.status, text)
    }

    /// Starts `esurio <args>` with extra environment, its log going to the returned file.
    pub fn spawn_logged(
        &self,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> (Child, std::path::PathBuf) {
        let log = std::env::temp_dir().join(format!(
            "{}.{}.{}.log",
            self.group,
            std::process::id(),
            unique("w")
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = self.esurio(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        (child, log)
    }

    /// The offset stored for one partition of a family's topic (0 if none yet).
    pub async fn stored_offset(&self, family: &str, partition: i32) -> i64 {
        self.db()
            .await
            .query_opt(
                "SELECT next_offset FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
                &[&self.group, &self.topic(family), &partition],
            )
            .await
            .unwrap()
            .map_or(0, |r| r.get(0))
    }
}

/// Sends SIGTERM and waits (bounded) for the process to exit.
pub fn terminate(child: Child, limit: Duration) -> Output {
    // SAFETY: kill(2) on a child we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    wait_with_timeout(child, limit)
}

/// A message as read back.
#[derive(Debug, Clone)]
pub struct Message {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Message {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
}

impl TestEnv {
    /// Every message of a topic, all partitions, from the beginning to the high watermark.
    pub fn read_topic(&self, topic: &str) -> Vec<Message> {
        let env = self;
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &env.brokers)
            .set("group.id", format!("{}-read", env.group))
            .set("enable.auto.commit", "false")
            .set("fetch.message.max.bytes", "16777216")
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut want = 0;
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            let (lo, hi) = c
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            want += hi - lo;
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while (out.len() as i64) < want {
            assert!(
                std::time::Instant::now() < deadline,
                "read {} of {want} messages of {topic}",
                out.len()
            );
            if let Some(m) = c.poll(Duration::from_millis(500)) {
                let m = m.unwrap();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_owned(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Message {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Enrichment events (tests/it/enrich.rs and the fault suite)

/// The event id every current row of `table` must have: its lineage and the batch that wrote it
/// (the batch whose started_at is the row's ingested_at and whose range holds its offset).
pub async fn expected_event_ids(env: &TestEnv, table: &str) -> BTreeSet<String> {
    let db = env.db().await;
    let rows = db
        .query(
            &format!(
                "SELECT esurio_event_id(t.source_topic, t.source_partition, t.source_offset, t.ingested_at)
                   FROM {table} t"
            ),
            &[],
        )
        .await
        .unwrap();
    // esurio_event_id fails if two batches match, and is NULL if none does.
    rows.iter()
        .map(|r| {
            r.get::<_, Option<String>>(0)
                .unwrap_or_else(|| panic!("a row of {table} has no batch"))
        })
        .collect()
}

/// Ids of the history versions of `table` that were current once (revised or deleted since):
/// each has its event too.
pub async fn revised_event_ids(env: &TestEnv, table: &str) -> BTreeSet<String> {
    if table == "market_data" {
        return BTreeSet::new(); // reject policy: no history
    }
    let db = env.db().await;
    db.query(
        &format!(
            "SELECT esurio_event_id(t.source_topic, t.source_partition, t.source_offset, t.ingested_at)
               FROM {table}_history t
              WHERE t.history_reason <> 'superseded'"
        ),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The event id of a value: JSON's `event_id`, or Avro's first field (after the single-object
/// header: a zigzag varint length, then the bytes).
pub fn event_id(payload: &[u8]) -> String {
    if let Some(body) = payload.strip_prefix(&[0xC3, 0x01]) {
        let body = &body[8..];
        let (mut len, mut shift, mut i) = (0u64, 0, 0);
        loop {
            let b = body[i];
            len |= u64::from(b & 0x7f) << shift;
            i += 1;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        let len = (len >> 1) as usize;
        return String::from_utf8(body[i..i + len].to_vec()).unwrap();
    }
    let v: Value = serde_json::from_slice(payload).unwrap();
    v["event_id"].as_str().unwrap().to_owned()
}

pub fn event_ids(events: &[Message]) -> Vec<String> {
    events.iter().map(|m| event_id(&m.payload)).collect()
}
