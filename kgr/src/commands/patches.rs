//! `patches`: the loaded live patches, in stack order.

use anyhow::Result;
use serde::Serialize;

use crate::model::Patch;
use crate::sources::package::{self, PackageInfo};
use crate::sources::sysfs::{Depth, Livepatching};

use super::{read_system, Context};

#[derive(Debug, Serialize)]
pub struct PatchEntry {
    #[serde(flatten)]
    pub patch: Patch,
    /// The owning package; looked up only on the live system with `-v`/`--json`.
    pub package: Option<PackageInfo>,
}

#[derive(Debug, Serialize)]
pub struct PatchesReport {
    pub patches: Vec<PatchEntry>,
}

pub fn run(ctx: &mut Context) -> Result<PatchesReport> {
    let patches = match read_system(ctx, Depth::Full)? {
        Livepatching::Unsupported => Vec::new(),
        Livepatching::Livepatch(patches) | Livepatching::Kgraft { patches, .. } => patches,
    };
    let look_up = ctx.root.is_live() && (ctx.verbose > 0 || ctx.json);
    let patches = patches
        .into_iter()
        .map(|patch| {
            let package = if look_up && patch.enabled {
                package::lookup(&patch.name)
            } else {
                None
            };
            PatchEntry { patch, package }
        })
        .collect();
    Ok(PatchesReport { patches })
}
