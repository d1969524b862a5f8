//! `/proc/kallsyms` (under the root): the addresses of the few symbols a
//! stack check needs, in one pass over the file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};

use anyhow::{Context, Result};

use crate::model::{parse_kallsyms_line, SymbolTable};

use super::Root;

/// The entries of the `wanted` names, in file order; `None` when the root
/// has no kallsyms (an old capture).
pub fn read(root: &Root, wanted: &HashSet<&str>) -> Result<Option<SymbolTable>> {
    let path = root.proc().join("kallsyms");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let mut table = SymbolTable::new();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        // The name is the third field: check it before parsing the rest.
        let Some(name) = line.split_whitespace().nth(2) else {
            continue;
        };
        if !wanted.contains(name) {
            continue;
        }
        if let Some((name, symbol)) = parse_kallsyms_line(&line) {
            table.entry(name.to_owned()).or_default().push(symbol);
        }
    }
    Ok(Some(table))
}
