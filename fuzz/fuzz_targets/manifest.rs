//! Fuzzes the manifest parser (CSV and JSON Lines) with arbitrary bytes: the header and the
//! rows must parse or be refused with a reason, never panic, and every row keeps a line
//! number inside the input. Nothing is written to disk.
#![no_main]

use aldente::config::DatasetConfig;
use aldente::dataset::manifest::{Columns, parse_header, parse_rows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for jsonl in [false, true] {
        let Ok(header) = parse_header(data, jsonl) else {
            continue;
        };
        let Ok(columns) = Columns::find(&header, &DatasetConfig::default()) else {
            continue;
        };
        if let Ok((rows, bad)) = parse_rows(data, jsonl, &columns) {
            for row in &rows {
                assert!(row.line >= 1 && row.line <= lines + 1, "line {}", row.line);
            }
            for (line, why) in &bad {
                assert!(*line >= 1 && !why.is_empty());
            }
        }
    }
});
