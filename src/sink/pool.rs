//! The connection pool, with the original design's settings mapped onto deadpool (see
//! [`crate::config::DatabaseSettings`] for the mapping).

use crate::config::DatabaseSettings;
use anyhow::Context;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;

/// Builds the pool. Connections are opened lazily.
///
/// # Errors
/// The URL does not parse.
pub fn build(s: &DatabaseSettings, application_name: &str) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = s
        .url()
        .parse()
        .context("database.url is not a valid PostgreSQL URL")?;
    pg.application_name(application_name);
    pg.options(format!(
        "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
        s.statement_timeout.as_millis(),
        (s.statement_timeout * 2).as_millis()
    ));
    pg.connect_timeout(s.pool_timeout.min(Duration::from_secs(10)));
    pg.keepalives(true);
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            // Fast: a broken connection surfaces as a retriable error on use, and the batch retries.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let recycle = s.pool_recycle;
    let pool = Pool::builder(mgr)
        .max_size(s.pool_size + s.max_overflow)
        .wait_timeout(Some(s.pool_timeout))
        .create_timeout(Some(s.pool_timeout))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1)
        .pre_recycle(Hook::sync_fn(move |_, metrics| {
            if metrics.age() > recycle {
                Err(HookError::message("older than database.pool_recycle"))
            } else {
                Ok(())
            }
        }))
        .build()
        .context("cannot build the connection pool")?;
    Ok(pool)
}

/// Closes idle connections beyond `pool_size` and connections older than `pool_recycle`: the
/// "overflow" half of the original design's pool, which deadpool does not have.
pub fn spawn_sweeper(
    pool: Pool,
    s: &DatabaseSettings,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let keep = s.pool_size;
    let recycle = s.pool_recycle;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let status = pool.status();
            let mut excess = status.size.saturating_sub(keep);
            pool.retain(|_, m| {
                if m.age() > recycle {
                    return false;
                }
                // Only idle connections are visited, so this closes overflow connections not in use.
                if excess > 0 && m.last_used() > Duration::from_secs(30) {
                    excess -= 1;
                    return false;
                }
                true
            });
        }
    })
}
