//! The `esurio` binary: parse the command line, load settings, start telemetry, run.

use clap::{Parser, Subcommand};
use esurio::config::Settings;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Esurio ingest: spider topics from Kafka into PostgreSQL with COPY, exactly once.
///
/// Settings come from config/base.yaml, then config/$ESURIO_ENV.yaml (default: local), then
/// ESURIO__SECTION__KEY environment variables (e.g. ESURIO__DATABASE__URL). Every key has a default
/// that matches the local stack (`scripts/stack up`).
#[derive(Parser)]
#[command(name = "esurio", version, propagate_version = true)]
struct Cli {
    /// Directory holding base.yaml and <env>.yaml.
    #[arg(
        long,
        global = true,
        env = "ESURIO_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume every configured topic into PostgreSQL until SIGTERM/SIGINT (or idle, see below).
    ///
    /// Applies pending migrations first unless --no-migrate. Each topic gets its own consumer in the
    /// group kafka.group_id; each partition resumes at the offset stored in PostgreSQL.
    Run {
        /// Exit once every topic is caught up and no record arrived for this long (e.g. "5s").
        /// For scripts and tests. If partitions are stopped on an offset gap (see `esurio offsets`)
        /// once everything else is caught up, exit non-zero naming them instead of waiting.
        #[arg(long, value_parser = humantime::parse_duration)]
        exit_when_idle: Option<Duration>,
        /// Do not apply migrations at start (for roles without DDL rights).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply the SQL migrations in sql/migrations (idempotent; safe when run concurrently).
    Migrate,
    /// Produce realistic synthetic spider records (with a share of invalid ones) to every topic.
    Simulate(esurio::simulate::SimulateArgs),
    /// Measure ingestion: end-to-end rows/s against the raw COPY ceiling, peak RSS, CPU, latency.
    ///
    /// Fills fresh topics with simulated records, runs the real worker on them into fresh
    /// databases, COPYs the same rows directly for comparison, and prints medians on stdout.
    Bench(esurio::bench::BenchArgs),
    /// Load and validate the settings, print them (secrets redacted), and exit.
    CheckConfig,
    /// Inspect and reset where partitions resume (after a topic was recreated, or retention
    /// removed records never written); every reset is audited in offset_resets.
    #[command(long_about = esurio::admin::offsets::LONG_ABOUT)]
    Offsets(esurio::admin::offsets::OffsetsArgs),
    /// Show what a row was computed from: its inputs, back to the ticks and articles, as a tree.
    #[command(long_about = esurio::admin::lineage::LONG_ABOUT)]
    Lineage(esurio::admin::lineage::LineageArgs),
}

fn main() -> ExitCode {
    esurio::telemetry::tune_allocator();
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.config_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("esurio: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    esurio::telemetry::init(&settings.telemetry);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("esurio-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("esurio: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cli.command {
            Command::Run {
                exit_when_idle,
                no_migrate,
            } => {
                esurio::run::run(
                    settings,
                    esurio::run::RunOptions {
                        exit_when_idle,
                        migrate: !no_migrate,
                    },
                )
                .await
            }
            Command::Migrate => esurio::run::migrate(&settings).await.map(|n| {
                println!("applied {n} migration(s); the schema is up to date");
            }),
            Command::Simulate(args) => esurio::simulate::run(&settings, args).await,
            Command::Bench(args) => esurio::bench::run(&settings, args).await,
            Command::Offsets(args) => esurio::admin::offsets::run(&settings, args).await,
            Command::Lineage(args) => esurio::admin::lineage::run(&settings, args).await,
            Command::CheckConfig => {
                println!("{:#?}", settings.redacted());
                Ok(())
            }
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esurio: {e:#}");
            ExitCode::FAILURE
        }
    }
}
