//! `esurio run`: wires the stages together and owns shutdown.
//!
//! Shutdown (SIGTERM, SIGINT, or idle exit): the soft stop makes every topic thread stop fetching,
//! flush its partial batches and wait for its writers; the dead-letter relay makes a last pass. If
//! that takes longer than the drain deadline (shorter than the group session timeout, so the group
//! never waits on a dead member), the hard stop abandons retries: nothing uncommitted is lost, it is
//! re-read from the stored offsets after restart.

use crate::config::Settings;
use crate::decode::Registry;
use crate::publish::DlqRelay;
use crate::sink::{migrate, pool, Sink};
use crate::source::{Prefetch, TopicProgress, TopicWorker, WorkerDeps};
use anyhow::Context;
use rdkafka::producer::Producer as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

const RELAY: &str = "the dead-letter relay";
const ENRICH: &str = "the enrichment relay";
const MAINTENANCE: &str = "the partition maintenance task";
const SWEEPER: &str = "the pool sweeper";

/// What a task's end says: its panic message, or that it was cancelled.
pub(crate) fn join_error_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Options of `esurio run` that are about this invocation rather than the deployment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Exit once every topic is caught up and no record arrived for this long.
    pub exit_when_idle: Option<Duration>,
    /// Apply pending migrations before consuming.
    pub migrate: bool,
}

/// Applies migrations with a dedicated connection.
///
/// # Errors
/// Cannot connect, or a migration fails.
pub async fn migrate(settings: &Settings) -> anyhow::Result<usize> {
    let pool = pool::build(&settings.database, "esurio-migrate")?;
    let client = pool
        .get()
        .await
        .context("cannot connect to the database (database.url)")?;
    let mut client = deadpool_postgres::Object::take(client);
    migrate::run(&mut client).await
}

/// Creates the day partitions for yesterday..today+7 (and keeps doing so daily while running).
async fn ensure_partitions_ahead(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let client = pool.get().await?;
    let today = chrono::Utc::now().date_naive();
    for t in crate::records::all_tables().filter(|t| t.partitioned) {
        let n: i32 = client
            .query_one(
                include_str!("../sql/sink/ensure_partitions.sql"),
                &[
                    &t.name,
                    &(today - chrono::Duration::days(1)),
                    &(today + chrono::Duration::days(7)),
                ],
            )
            .await?
            .get(0);
        if n > 0 {
            info!(table = t.name, created = n, "Created partitions ahead.");
        }
    }
    Ok(())
}

/// Runs the worker until a signal or idle exit.
///
/// # Errors
/// Start-up failures (database unreachable for migrations, bad Kafka settings).
pub async fn run(settings: Settings, opts: RunOptions) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    crate::decode::limit_avro_allocations(settings.decode.max_record_bytes);
    if opts.migrate {
        let n = migrate(&settings).await?;
        info!(applied = n, "Migrations are up to date.");
    }
    let pool = pool::build(&settings.database, "esurio-ingest")?;
    ensure_partitions_ahead(&pool)
        .await
        .context("cannot create partitions (was `esurio migrate` run?)")?;

    let stop = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let sweeper = pool::spawn_sweeper(pool.clone(), &settings.database, hard_stop.clone());
    let maintenance = {
        let pool = pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
                if let Err(e) = ensure_partitions_ahead(&pool).await {
                    warn!(error = %format!("{e:#}"), "Failed to create partitions ahead.");
                }
            }
        })
    };
    let dlq_notify = Arc::new(Notify::new());
    let producer = crate::publish::producer(&settings.kafka)?;
    let topics: Vec<String> = settings
        .kafka
        .topics
        .iter()
        .map(|f| settings.topic(f))
        .collect();
    let prefetch = {
        let (client, topics, bytes) = (
            producer.clone(),
            topics.clone(),
            settings.kafka.prefetch_bytes,
        );
        tokio::task::spawn_blocking(move || Prefetch::for_topics(client.client(), &topics, bytes))
            .await?
    };
    // The dead-letter topics exist before anything is quarantined: brokers do not auto-create
    // topics in production, and the relay would otherwise meet a missing topic per record.
    crate::publish::create_dlq_topics(&settings.kafka, &topics)
        .await
        .context("cannot create the dead-letter topics")?;
    let dlq_topics: Vec<String> = topics
        .iter()
        .map(|t| format!("{t}{}", settings.kafka.dlq_suffix))
        .collect();
    let relay = DlqRelay::new(
        pool.clone(),
        &settings.kafka,
        producer,
        dlq_notify.clone(),
        dlq_topics,
    )?;
    let relay = tokio::spawn(relay.run(stop.clone(), hard_stop.clone()));
    // Enrichment: topics and cursors exist before the first batch commits.
    let (enrich_tx, enrich_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut enrich_hook = None;
    let enrich = if settings.enrichment.families.is_empty() {
        // Nothing to relay: a task that lives until the stop, like the others.
        let stop = stop.clone();
        tokio::spawn(async move { stop.cancelled().await })
    } else {
        crate::enrich::create_topics(&settings)
            .await
            .context("cannot create the enrichment topics")?;
        let mut relay = crate::enrich::EnrichRelay::new(pool.clone(), &settings, enrich_rx)?;
        enrich_hook = Some(crate::enrich::EnrichHook {
            committed: enrich_tx,
            handovers: relay.handovers(),
        });
        relay
            .seed()
            .await
            .context("cannot set up the enrichment cursors")?;
        crate::enrich::relay::describe(&settings);
        tokio::spawn(relay.run(stop.clone(), hard_stop.clone()))
    };
    // Owned and observed: the main loop notices one ending early, shutdown notices a panic.
    let background = [
        (RELAY, relay),
        (ENRICH, enrich),
        (MAINTENANCE, maintenance),
        (SWEEPER, sweeper),
    ];
    let mut died: Option<&str> = None;

    let sink = Sink::new(
        pool.clone(),
        settings.kafka.group_id.clone(),
        &settings.database,
    );
    let registry = settings
        .decode
        .schema_registry_url
        .as_deref()
        .map(|u| Arc::new(Registry::new(u, settings.decode.schema_registry_timeout)));
    let deps = WorkerDeps {
        settings: settings.clone(),
        sink,
        registry,
        runtime: tokio::runtime::Handle::current(),
        stop: stop.clone(),
        hard_stop: hard_stop.clone(),
        dlq: dlq_notify,
        enrich: enrich_hook,
        budget: crate::batch::MemoryBudget::new(settings.batch.max_in_flight_bytes),
        prefetch,
    };

    let mut threads = Vec::new();
    let mut progress = Vec::new();
    for name in &settings.kafka.topics {
        let family = crate::records::family(name).context("unknown family")?;
        let p = Arc::new(TopicProgress::default());
        let worker = TopicWorker::new(family, deps.clone(), p.clone())?;
        progress.push(p);
        let t = std::thread::Builder::new()
            .name(format!("consume-{name}"))
            .spawn(move || worker.run())
            .context("cannot start a consumer thread")?;
        threads.push(t);
    }
    info!(topics = threads.len(), group = %settings.kafka.group_id, "Esurio ingest is running.");

    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // Partitions stopped on an offset gap when everything else was done: the idle exit fails.
    let mut stopped_at_exit: Vec<String> = Vec::new();
    // One signal listener for the whole run: a listener made afresh per tick would miss a SIGTERM
    // that arrives between two ticks (tokio delivers a signal only to listeners that exist then).
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let reason = loop {
        tokio::select! {
            r = &mut shutdown => break r,
            _ = tick.tick() => {}
        }
        let total: u64 = progress
            .iter()
            .map(|p| p.records.load(Ordering::Relaxed))
            .sum();
        if last_progress.elapsed() >= Duration::from_secs(10) {
            info!(
                records = total,
                elapsed_s = started.elapsed().as_secs(),
                "Progress."
            );
            last_progress = Instant::now();
        }
        if let Some(idle) = opts.exit_when_idle {
            let now_ms = chrono::Utc::now().timestamp_millis() as u64;
            let all_caught_up = progress.iter().all(|p| p.caught_up.load(Ordering::Relaxed));
            // A stopped partition waits for an operator; waiting for it here would hang scripts.
            let all_settled = progress.iter().all(|p| p.settled.load(Ordering::Relaxed));
            let quiet = progress.iter().all(|p| {
                let last = p.last_record_ms.load(Ordering::Relaxed);
                last == 0 || now_ms.saturating_sub(last) >= idle.as_millis() as u64
            }) && started.elapsed() >= idle;
            if all_caught_up && quiet {
                break "caught up and idle";
            }
            if all_settled && quiet {
                stopped_at_exit = progress
                    .iter()
                    .flat_map(|p| p.stopped.lock().unwrap_or_else(|e| e.into_inner()).clone())
                    .collect();
                if !stopped_at_exit.is_empty() {
                    break "caught up except partitions stopped on an offset gap";
                }
            }
        }
        if threads.iter().any(|t| t.is_finished()) {
            break "a consumer thread stopped";
        }
        // These run until the stop: one that ended before it died.
        if let Some(name) = background
            .iter()
            .find(|(_, h)| h.is_finished())
            .map(|(name, _)| *name)
        {
            error!(
                task = name,
                "A background task stopped unexpectedly; shutting the worker down."
            );
            died = Some(name);
            break "a background task stopped";
        }
    };
    info!(reason, "Shutting down: flushing and committing.");
    stop.cancel();
    let deadline = settings
        .kafka
        .session_timeout
        .saturating_sub(Duration::from_secs(2))
        .max(Duration::from_secs(1));
    let hard = hard_stop.clone();
    let hard_timer = tokio::spawn(async move {
        tokio::time::sleep(deadline).await;
        warn!("Drain deadline passed; abandoning retries (uncommitted data is re-read after restart).");
        hard.cancel();
    });
    let mut failed = None;
    for t in threads {
        let name = t.thread().name().unwrap_or("consumer").to_owned();
        match tokio::task::spawn_blocking(move || t.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failed = Some(e.context(name)),
            _ => failed = Some(anyhow::anyhow!("{name} panicked")),
        }
    }
    hard_timer.abort();
    // Every background task's end is observed: a panic, or an end before the stop, fails the run.
    for (name, handle) in background {
        if name == MAINTENANCE && died != Some(name) {
            handle.abort(); // it sleeps for an hour between runs
        }
        if name == SWEEPER {
            hard_stop.cancel();
        }
        let cause = match handle.await {
            Err(e) if e.is_panic() => Some(join_error_message(e)),
            _ if died == Some(name) => Some("it ended before the stop".to_owned()),
            _ => None,
        };
        if let Some(cause) = cause {
            error!(task = name, %cause, "A background task died.");
            failed.get_or_insert_with(|| anyhow::anyhow!("{name} died: {cause}"));
        }
    }
    hard_stop.cancel();
    match failed {
        Some(e) => Err(e),
        None if !stopped_at_exit.is_empty() => Err(anyhow::anyhow!(
            "stopped with partitions held on an offset gap (nothing of them was written or skipped): {}; \
             see `esurio offsets list`, then `esurio offsets reset`",
            stopped_at_exit.join("; ")
        )),
        None => {
            info!("Stopped cleanly.");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
