//! Versioned migrations from `sql/migrations/`, embedded in the binary.
//!
//! Safe when several workers start at once: a session-level advisory lock serializes migrators, and
//! each file runs in its own transaction together with the row recording it. A file that changed
//! after it was applied is an error (edit history by adding a file, never by rewriting one).

use anyhow::{bail, Context};
use tokio_postgres::Client;
use tracing::info;

/// `(version, name, sql)`, in order. A test checks this lists every file in `sql/migrations/`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_schema.sql",
        include_str!("../../sql/migrations/0001_schema.sql"),
    ),
    (
        2,
        "0002_partitions.sql",
        include_str!("../../sql/migrations/0002_partitions.sql"),
    ),
    (
        3,
        "0003_ingest_state.sql",
        include_str!("../../sql/migrations/0003_ingest_state.sql"),
    ),
    (
        4,
        "0004_revisions.sql",
        include_str!("../../sql/migrations/0004_revisions.sql"),
    ),
    (
        5,
        "0005_offset_resets.sql",
        include_str!("../../sql/migrations/0005_offset_resets.sql"),
    ),
    (
        6,
        "0006_quarantine_identity.sql",
        include_str!("../../sql/migrations/0006_quarantine_identity.sql"),
    ),
    (
        7,
        "0007_enrichment.sql",
        include_str!("../../sql/migrations/0007_enrichment.sql"),
    ),
    (
        8,
        "0008_writeback.sql",
        include_str!("../../sql/migrations/0008_writeback.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key migrators agree on.
const LOCK_KEY: i64 = 0x6573_7572_696f_0001;

/// FNV-1a, enough to notice an edited migration (not a security boundary).
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Applies pending migrations; returns how many were applied.
///
/// # Errors
/// A migration fails (its transaction is rolled back), or an applied one was edited since.
pub async fn run(client: &mut Client) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("cannot take the migration lock")?;
    let res = apply(client).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    res
}

async fn apply(client: &mut Client) -> anyhow::Result<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS esurio_schema_migrations (
                version int PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .context("cannot create esurio_schema_migrations")?;
    let applied: Vec<(i32, String)> = client
        .query(
            "SELECT version, checksum FROM esurio_schema_migrations",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut n = 0;
    for (version, name, sql) in MIGRATIONS {
        let sum = checksum(sql);
        if let Some((_, have)) = applied.iter().find(|(v, _)| v == version) {
            if *have != sum {
                bail!("migration {name} was edited after it was applied (checksum {have} in the database, {sum} in this build)");
            }
            continue;
        }
        let tx = client.transaction().await?;
        // Sent whole: files hold dollar-quoted function bodies that must not be split on ';'.
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migration {name} failed"))?;
        tx.execute(
            "INSERT INTO esurio_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[version, name, &sum],
        )
        .await?;
        tx.commit().await?;
        info!(migration = name, "Applied a migration.");
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = super::MIGRATIONS.iter().map(|m| m.1.to_owned()).collect();
        assert_eq!(files, listed);
        // Versions rise and match their file names; a number may be missing while another branch
        // holds it (0004 was reserved while 0005 was written).
        for w in super::MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].1, w[1].1);
        }
        for m in super::MIGRATIONS {
            assert_eq!(m.1[..4].parse::<i32>().unwrap(), m.0, "{}", m.1);
        }
    }
}
