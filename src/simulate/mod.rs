//! The spider simulator (in progress).

/// Arguments of `esurio simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

/// # Errors
/// Not yet implemented.
pub async fn run(_s: &crate::config::Settings, _a: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
