//! `snapshot`: capture what kgr reads into one archive for offline use.

use std::path::Path;

use anyhow::Result;

use crate::sources::capture::{self, CaptureSummary};

use super::Context;

pub fn run(ctx: &mut Context, output: &Path) -> Result<CaptureSummary> {
    let summary = capture::capture(&ctx.root, output)?;
    capture::end_progress();
    if !summary.unreadable.is_empty() && !crate::sources::signal::is_root() {
        ctx.warn(format!(
            "{} files could not be read; a complete snapshot needs root (run as root)",
            summary.unreadable.len()
        ));
    }
    Ok(summary)
}
