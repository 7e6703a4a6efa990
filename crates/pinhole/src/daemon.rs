//! The daemons.
use std::path::Path;

/// Runs an MPR.
pub(crate) async fn run_mpr(_config: &Path) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}

/// Runs an APS.
pub(crate) async fn run_aps(_config: &Path) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
