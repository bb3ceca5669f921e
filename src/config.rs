//! One typed settings tree, loaded once: `config/base.yaml`, then `config/{ESURIO_ENV}.yaml` (default
//! `local`), then environment variables `ESURIO__SECTION__KEY` (e.g. `ESURIO__DATABASE__URL`).
//! Every field has a default, so the worker runs with no files at all against the local stack.

use crate::decode::Format;
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub decode: DecodeSettings,
    pub validate: ValidateSettings,
    pub batch: BatchSettings,
    pub database: DatabaseSettings,
    pub enrichment: EnrichmentSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// The consumer group every per-topic consumer joins; also the key of the offsets table.
    pub group_id: String,
    /// Prepended to every family name to form the topic (`<prefix>market_data`), so that several
    /// environments can share a cluster.
    pub topic_prefix: String,
    /// Families to consume (default: all 14: the 13 record families and `sentiment_update`). Each
    /// gets its own consumer.
    pub topics: Vec<String>,
    /// Appended to a topic's name to form its dead-letter topic.
    pub dlq_suffix: String,
    /// Partitions of each dead-letter topic `esurio run` creates (an existing topic is left as it
    /// is). Dead letters are few; one partition keeps them in order.
    pub dlq_partitions: i32,
    /// Replication factor of each dead-letter topic `esurio run` creates: 1 for the local
    /// single-broker stack; 3 in production, so dead letters survive a broker loss.
    pub dlq_replication_factor: i32,
    /// Largest dead-letter message (key, payload, headers and framing) the relay sends; a larger
    /// quarantined record is sent cut to this, with `esurio.truncated` headers (the quarantine
    /// row keeps it whole). Below Kafka's default `max.message.bytes` (1 MiB + 12); a topic that
    /// rejects a message as too large lowers it for that topic to the limit it reports.
    pub dlq_max_message_bytes: usize,
    /// Group session timeout: how long the broker waits before evicting a silent member. Shutdown
    /// drains within a deadline shorter than this.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often committed offsets are also committed to Kafka, for lag tooling only (PostgreSQL is
    /// the source of truth).
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Memory for fetched-but-unprocessed messages, over all consumed topics. librdkafka bounds
    /// its prefetch per partition only (`queued.max.messages.kbytes`, `queued.min.messages`), so
    /// this is split evenly over the partitions of the consumed topics (read from the cluster's
    /// metadata at start) and each consumer gets its share per partition. librdkafka holds ~250
    /// bytes per fetched message beyond its payload, so the message count is bounded too.
    pub prefetch_bytes: usize,
    /// `partition.assignment.strategy`: `cooperative-sticky` moves only the partitions that must move.
    pub assignment_strategy: String,
    /// Extra librdkafka properties, applied last (e.g. `security.protocol`).
    pub librdkafka: BTreeMap<String, String>,
    /// What a partition does when its stored offset lies outside what the broker holds: above the
    /// high watermark (the topic was deleted and recreated, or truncated) or below the low
    /// watermark (retention removed records before they were written). Either way, resuming there
    /// would skip records silently; see [`OffsetGapPolicy`].
    pub on_offset_gap: OffsetGapPolicy,
    /// How often a partition stopped on an offset gap is checked again, so that an operator's
    /// `esurio offsets reset` takes effect without a restart; also how often idle partitions'
    /// stored offsets are compared with the worker's own, so that a reset of a partition that
    /// receives nothing new is noticed too.
    #[serde(with = "humantime_serde")]
    pub offset_check_interval: Duration,
}

/// What to do when a partition's stored offset is outside the broker's low..high range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OffsetGapPolicy {
    /// Stop that partition (nothing written, nothing skipped) with an error naming the command that
    /// resolves it (`esurio offsets reset`); every other partition goes on.
    #[default]
    Stop,
    /// Move the stored offset to the earliest offset the broker still holds, record the move in
    /// `offset_resets` and go on: for topics whose recreation or retention is routine.
    ResetToEarliest,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            group_id: "esurio-ingest".into(),
            topic_prefix: String::new(),
            topics: crate::records::family_names().map(str::to_owned).collect(),
            dlq_suffix: ".dlq".into(),
            dlq_partitions: 1,
            dlq_replication_factor: 1,
            dlq_max_message_bytes: 1_000_000,
            session_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_secs(5),
            prefetch_bytes: 64 * 1024 * 1024,
            assignment_strategy: "cooperative-sticky".into(),
            librdkafka: BTreeMap::new(),
            on_offset_gap: OffsetGapPolicy::Stop,
            offset_check_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSettings {
    /// `auto` (detect per record), `json`, `avro_registry` or `avro_single_object`.
    pub format: Format,
    /// Per-topic override of `format`, keyed by family name.
    pub formats: BTreeMap<String, Format>,
    /// Records larger than this are quarantined as `too_large` before any parsing.
    pub max_record_bytes: usize,
    /// Confluent-compatible schema registry base URL; needed for the registry wire format.
    pub schema_registry_url: Option<String>,
    /// Per request to the registry. A request blocks its topic's consumer thread for at most this.
    #[serde(with = "humantime_serde")]
    pub schema_registry_timeout: Duration,
    /// While the registry is unavailable, a partition that needs it is paused and retried after
    /// this delay, doubling (with jitter) up to `schema_registry_retry_max_backoff`; the consumer
    /// keeps polling its other partitions meanwhile.
    #[serde(with = "humantime_serde")]
    pub schema_registry_retry_initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub schema_registry_retry_max_backoff: Duration,
}

impl Default for DecodeSettings {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            formats: BTreeMap::new(),
            max_record_bytes: 1024 * 1024,
            schema_registry_url: None,
            schema_registry_timeout: Duration::from_secs(5),
            schema_registry_retry_initial_backoff: Duration::from_millis(200),
            schema_registry_retry_max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateSettings {
    /// Timestamps further ahead of the worker's clock than this are rejected (`timestamp_in_future`).
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Timestamps further in the past than this are rejected (`timestamp_too_old`).
    #[serde(with = "humantime_serde")]
    pub max_past: Duration,
}

impl Default for ValidateSettings {
    fn default() -> Self {
        Self {
            max_future: Duration::from_secs(300),
            max_past: Duration::from_secs(20 * 365 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// A partition's batch is written once it holds this many records...
    pub max_records: usize,
    /// ...or this many encoded bytes...
    pub max_bytes: usize,
    /// ...or its oldest record has waited this long.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Batches queued per partition behind the one being written: the backpressure bound.
    pub queue_depth: usize,
    /// Memory all batches together may hold (being built, queued or written), over every topic and
    /// partition; consumers stop fetching while it is used up. With `kafka.prefetch_bytes`, this
    /// bounds the worker's memory.
    pub max_in_flight_bytes: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_records: 5000,
            max_bytes: 8 * 1024 * 1024,
            linger: Duration::from_millis(50),
            queue_depth: 8,
            max_in_flight_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Connection pool settings, with the original design's keys. deadpool has no overflow notion, so:
/// the pool holds at most `pool_size + max_overflow` connections; a periodic sweep closes idle
/// connections beyond `pool_size` and any older than `pool_recycle`; waiting for a connection times out
/// after `pool_timeout`; `echo` logs every statement the sink runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: SecretString,
    /// Connections kept open.
    pub pool_size: usize,
    /// Extra connections opened under load, closed again when idle.
    pub max_overflow: usize,
    /// How long a batch waits for a free connection before the attempt counts as failed (and retried).
    #[serde(with = "humantime_serde")]
    pub pool_timeout: Duration,
    /// Connections older than this are closed and replaced (e.g. to follow a DNS or failover change).
    #[serde(with = "humantime_serde")]
    pub pool_recycle: Duration,
    /// Log every SQL statement the sink runs (at INFO).
    pub echo: bool,
    /// Server-side `statement_timeout` for the sink's sessions; a statement over it is retried.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// First retry delay after a transient error (doubles up to `retry_max_backoff`).
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// How a batch's rows reach their tables; see [`WritePath`].
    pub write_path: WritePath,
    /// How far back the day partitions of market_data, crypto_data and order_book go: the worker
    /// creates a missing day's partition on demand only inside this window (and a week ahead), and
    /// quarantines rows older than it as `outside_partition_window` instead of creating partitions
    /// for long-gone days or recreating ones that retention dropped. Keep it at or below your
    /// retention; widen it for a deliberate backfill.
    #[serde(with = "humantime_serde")]
    pub partition_max_past: Duration,
    /// How long a batch of write-back results waits for the rows it references (a feature's
    /// entity, a signal's strategy) before the records that name unknown ones are quarantined
    /// (`unknown_entity`, `unknown_strategy`). Topics are consumed independently, so a signal can be
    /// read before the strategy produced just ahead of it on another topic is committed.
    #[serde(with = "humantime_serde")]
    pub reference_wait: Duration,
}

/// How a batch's valid rows are written (both keep exactly-once: the offset compare-and-set is in
/// the same transaction either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WritePath {
    /// COPY straight into the target tables under a savepoint; if a row conflicts (a duplicate
    /// natural key) or is rejected, roll back to the savepoint and take the staged path, and keep
    /// taking it for the next few batches of that family (replays come in runs).
    #[default]
    Auto,
    /// Always COPY into a temporary staging table and merge with `INSERT .. ON CONFLICT DO
    /// NOTHING`: costs more per row, but never repeats a COPY. For replaying topics known to hold
    /// mostly rows already written, and for measuring the merge's cost (docs/PERFORMANCE.md).
    Staged,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://esurio:esurio@127.0.0.1:54320/esurio"),
            pool_size: 8,
            max_overflow: 4,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Duration::from_secs(1800),
            echo: false,
            statement_timeout: Duration::from_secs(120),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
            write_path: WritePath::Auto,
            partition_max_past: Duration::from_secs(366 * 86_400),
            reference_wait: Duration::from_secs(30),
        }
    }
}

impl DatabaseSettings {
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }
}

/// Enrichment events: after a batch commits, its rows are published to `<topic><topic_suffix>`
/// for the ML services (src/enrich, docs/ARCHITECTURE.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentSettings {
    /// Families whose committed rows are published (default: none). Switching a family on starts
    /// its events at the batches committed from then on; switching it off and on again resumes
    /// where it stopped (the cursor stays), so nothing committed meanwhile is missed.
    pub families: Vec<String>,
    /// Appended to a consumed topic's name to form its enrichment topic.
    pub topic_suffix: String,
    /// `avro` (single-object encoding, schemas/events/<family>.avsc) or `json`.
    pub format: EventFormat,
    /// Partitions of each enrichment topic the worker creates (an existing one is left as it is).
    pub partitions: i32,
    pub replication_factor: i32,
    /// Most batches of one partition the relay publishes per pass: the in-flight window, which
    /// bounds how many events a crash between the broker's acknowledgement and the cursor's
    /// commit can repeat (with the same event ids).
    pub max_batches_per_pass: usize,
    /// Compression of the enrichment producer (`lz4`, `zstd`, `none`...): events are many and
    /// small, and compressed batches cost the broker less.
    pub compression: String,
}

/// The encoding of enrichment events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    Avro,
    Json,
}

impl Default for EnrichmentSettings {
    fn default() -> Self {
        Self {
            families: Vec::new(),
            topic_suffix: ".enriched".into(),
            format: EventFormat::Avro,
            partitions: 4,
            replication_factor: 1,
            max_batches_per_pass: 32,
            compression: "lz4".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `text` or `json` log lines.
    pub log_format: String,
    /// `RUST_LOG`-style filter; the `RUST_LOG` variable wins when set.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            log_level: "info,tokio_postgres=warn".into(),
        }
    }
}

impl Settings {
    /// Loads the settings tree from `dir`.
    ///
    /// # Errors
    /// A file does not parse, names an unknown key, or a value has the wrong type; the message names
    /// the key and the file (or environment variable). `ESURIO_ENV` names an environment with no
    /// file (a typo would otherwise run production with the local defaults).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_env(dir, std::env::var("ESURIO_ENV").ok().as_deref())
    }

    /// [`Settings::load`] with `ESURIO_ENV` given (`None`: unset, meaning `local`, whose file may
    /// be absent: every key has a default).
    fn load_env(dir: &Path, esurio_env: Option<&str>) -> anyhow::Result<Self> {
        let env = esurio_env.unwrap_or("local");
        let env_file = dir.join(format!("{env}.yaml"));
        if esurio_env.is_some() && !env_file.exists() {
            anyhow::bail!(
                "ESURIO_ENV={env:?} but {} does not exist; the environments in {} are: {}",
                env_file.display(),
                dir.display(),
                environments(dir).join(", ")
            );
        }
        let files: Vec<PathBuf> = vec![dir.join("base.yaml"), env_file];
        let mut builder = config::Config::builder();
        for f in &files {
            if f.exists() {
                // Parse each file alone first: the combined tree would not say which file was wrong.
                let one = config::Config::builder()
                    .add_source(config::File::from(f.as_path()))
                    .build()
                    .with_context(|| format!("cannot read {}", f.display()))?;
                one.try_deserialize::<Settings>()
                    .with_context(|| format!("invalid settings in {}", f.display()))?;
                builder = builder.add_source(config::File::from(f.as_path()));
            }
        }
        let env_source = config::Environment::with_prefix("ESURIO")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("kafka.topics")
            .with_list_parse_key("enrichment.families")
            .try_parsing(true);
        let merged = builder
            .add_source(env_source)
            .build()
            .context("cannot read ESURIO__* environment variables")?;
        let settings: Settings = merged
            .try_deserialize()
            .context("invalid settings from the ESURIO__* environment variables")?;
        settings.check()?;
        Ok(settings)
    }

    /// Cross-field rules that types alone cannot say.
    fn check(&self) -> anyhow::Result<()> {
        for t in &self.kafka.topics {
            if crate::records::family(t).is_none() {
                anyhow::bail!(
                    "kafka.topics: {t:?} is not a record family (known: {})",
                    crate::records::family_names()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        for t in self.decode.formats.keys() {
            if crate::records::family(t).is_none() {
                anyhow::bail!("decode.formats: {t:?} is not a record family");
            }
        }
        if self.batch.max_records == 0 {
            anyhow::bail!("batch.max_records must be at least 1");
        }
        // A batch may overshoot max_bytes by one record and its buffers by their doubling; two full
        // batches must fit, or a single partition could not keep one written while it builds the next.
        if self.batch.max_in_flight_bytes < 4 * self.batch.max_bytes {
            anyhow::bail!(
                "batch.max_in_flight_bytes ({}) must be at least 4 x batch.max_bytes ({})",
                self.batch.max_in_flight_bytes,
                self.batch.max_bytes
            );
        }
        if self.database.pool_size == 0 {
            anyhow::bail!("database.pool_size must be at least 1");
        }
        // Bounded so that `now ± window` can never overflow a timestamp.
        if self.validate.max_past > Duration::from_secs(200 * 365 * 86_400) {
            anyhow::bail!("validate.max_past must be at most 200 years");
        }
        if self.validate.max_future > Duration::from_secs(10 * 365 * 86_400) {
            anyhow::bail!("validate.max_future must be at most 10 years");
        }
        if self.kafka.offset_check_interval < Duration::from_millis(100) {
            anyhow::bail!("kafka.offset_check_interval must be at least 100ms");
        }
        if self.kafka.dlq_partitions < 1 || self.kafka.dlq_replication_factor < 1 {
            anyhow::bail!(
                "kafka.dlq_partitions and kafka.dlq_replication_factor must be at least 1"
            );
        }
        // Room for the headers (reason, a bounded message, coordinates) and some of the record.
        if self.kafka.dlq_max_message_bytes < 4096 {
            anyhow::bail!("kafka.dlq_max_message_bytes must be at least 4096");
        }
        for t in &self.enrichment.families {
            if crate::records::family(t).is_none() {
                anyhow::bail!(
                    "enrichment.families: {t:?} is not a record family (known: {})",
                    crate::records::FAMILIES
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        if self.enrichment.partitions < 1 || self.enrichment.replication_factor < 1 {
            anyhow::bail!(
                "enrichment.partitions and enrichment.replication_factor must be at least 1"
            );
        }
        if self.enrichment.max_batches_per_pass == 0 {
            anyhow::bail!("enrichment.max_batches_per_pass must be at least 1");
        }
        if self.enrichment.topic_suffix.is_empty() {
            anyhow::bail!(
                "enrichment.topic_suffix must not be empty (events would go to the consumed topic)"
            );
        }
        if self.kafka.session_timeout < Duration::from_secs(1) {
            anyhow::bail!("kafka.session_timeout must be at least 1s");
        }
        Ok(())
    }

    /// A copy safe to print (`esurio check-config`): secrets inside `kafka.librdkafka` and the
    /// password of a URL are replaced by `[REDACTED]` (`database.url` is a `SecretString` already).
    pub fn redacted(&self) -> Settings {
        let mut s = self.clone();
        for (k, v) in s.kafka.librdkafka.iter_mut() {
            if is_secret_property(k) {
                *v = REDACTED.into();
            }
        }
        if let Some(u) = s.decode.schema_registry_url.as_mut() {
            *u = redact_url(u);
        }
        s
    }

    /// The Kafka topic of a family.
    pub fn topic(&self, family: &str) -> String {
        format!("{}{}", self.kafka.topic_prefix, family)
    }

    pub fn format_for(&self, family: &str) -> Format {
        self.decode
            .formats
            .get(family)
            .copied()
            .unwrap_or(self.decode.format)
    }
}

const REDACTED: &str = "[REDACTED]";

/// Whether a librdkafka property holds a secret: any `*password*` or `*secret*` key
/// (`sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, ...), a private key given inline (`ssl.key.pem`), and the
/// OAUTHBEARER config string (it may carry a client secret).
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k == "ssl.key.pem"
        || k == "sasl.oauthbearer.config"
}

/// `url` with its password (if any) replaced by `[REDACTED]`; text that is not a URL is returned
/// as is.
pub fn redact_url(url: &str) -> String {
    // Replaced in the text rather than through `Url::set_password`, which would percent-encode the
    // marker and normalize the rest of the URL.
    match url::Url::parse(url) {
        Ok(u) => match u.password() {
            Some(pw) => url.replacen(&format!(":{pw}@"), &format!(":{REDACTED}@"), 1),
            None => url.to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// The environments `dir` has a file for (`<env>.yaml`, except `base.yaml`), sorted.
fn environments(dir: &Path) -> Vec<String> {
    let mut envs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let env = name.strip_suffix(".yaml")?;
            (env != "base").then(|| env.to_owned())
        })
        .collect();
    envs.sort();
    if envs.is_empty() {
        envs.push("(none)".into());
    }
    envs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_yaml_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let c = config::Config::builder()
                    .add_source(config::File::from(p.as_path()))
                    .build()
                    .unwrap();
                let s: Settings = c
                    .try_deserialize()
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                s.check().unwrap();
                n += 1;
            }
        }
        assert!(n >= 1, "no YAML files in {}", dir.display());
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.yaml"), "batch:\n  max_rowz: 3\n").unwrap();
        let err = format!("{:#}", Settings::load(dir.path()).unwrap_err());
        assert!(err.contains("max_rowz"), "{err}");
        assert!(err.contains("base.yaml"), "{err}");
    }

    #[test]
    fn a_misspelled_esurio_env_names_the_variable_the_file_and_the_environments() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["base.yaml", "local.yaml", "production.yaml"] {
            std::fs::write(dir.path().join(f), "batch:\n  max_records: 3\n").unwrap();
        }
        let err = format!(
            "{:#}",
            Settings::load_env(dir.path(), Some("prodution")).unwrap_err()
        );
        assert!(err.contains("ESURIO_ENV"), "{err}");
        assert!(err.contains("prodution.yaml"), "{err}");
        assert!(err.contains("local, production"), "{err}");
        assert!(!err.contains("base"), "{err}");
        let s = Settings::load_env(dir.path(), Some("production")).unwrap();
        assert_eq!(s.batch.max_records, 3);
        // Unset means `local`, whose file may be absent: the defaults suffice.
        std::fs::remove_file(dir.path().join("local.yaml")).unwrap();
        Settings::load_env(dir.path(), None).unwrap();
        assert!(Settings::load_env(dir.path(), Some("local")).is_err());
    }

    #[test]
    fn check_config_output_redacts_librdkafka_secrets_and_url_passwords() {
        let mut s = Settings::default();
        let props = [
            ("sasl.password", "pw-1"),
            ("ssl.key.password", "pw-2"),
            ("ssl.keystore.password", "pw-3"),
            ("sasl.oauthbearer.client.secret", "pw-4"),
            ("SASL.PASSWORD.extra", "pw-5"),
            ("ssl.key.pem", "pw-6"),
            ("sasl.oauthbearer.config", "clientSecret=pw-7"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.username", "ingest"),
        ];
        for (k, v) in props {
            s.kafka.librdkafka.insert(k.into(), v.into());
        }
        s.decode.schema_registry_url = Some("https://ingest:pw-8@registry.example:8081".into());
        let shown = format!("{:#?}", s.redacted());
        for n in 1..=8 {
            assert!(
                !shown.contains(&format!("pw-{n}")),
                "pw-{n} leaked: {shown}"
            );
        }
        assert!(
            shown.contains("SASL_SSL") && shown.contains("\"ingest\""),
            "{shown}"
        );
        assert!(
            shown.contains("https://ingest:[REDACTED]@registry.example:8081"),
            "{shown}"
        );
        // The settings in use keep their values.
        assert_eq!(s.kafka.librdkafka["sasl.password"], "pw-1");
    }
}
