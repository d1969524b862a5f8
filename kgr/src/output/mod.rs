//! Renderers: the human layouts of compat.md and JSON, into any `io::Write`.

pub mod human;
pub mod metrics_server;
pub mod monitor;
pub mod prometheus;
pub mod report_svg;

use std::io::{self, Write};

use serde::Serialize;

/// Writes `report` as one JSON document on one line.
pub fn json<W: Write>(out: &mut W, report: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    writeln!(out)
}
