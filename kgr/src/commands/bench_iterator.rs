//! `bench-iterator` (hidden): the floor (d) of `cargo xtask bench`. Loads
//! the `iter/task` program once, then times bare passes: a link, its file,
//! the read of every record, no conversion. Works without live patching
//! (every record's state is then absent), so the host can be measured too.

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::sources::ebpf;

use super::Context;

/// Prints `load_ns=N` and then `read_ns=N records=N`, one line per pass.
pub fn run(ctx: &mut Context, repeat: usize, out: &mut impl Write) -> Result<()> {
    ebpf::precheck(ctx.root.is_live(), ctx.no_ebpf)
        .map_err(|why| anyhow!("the task iterator cannot be loaded: {why}"))?;
    let floor = ebpf::iterator_floor(repeat).map_err(|why| anyhow!("the task iterator: {why}"))?;
    writeln!(out, "load_ns={}", floor.load.as_nanos())?;
    for (time, records) in floor.passes {
        writeln!(out, "read_ns={} records={records}", time.as_nanos())?;
    }
    Ok(())
}
