//! Stage 6, render: fills the templates into report.html and writes report.json and
//! summary.md into the output folder (atomically: a reader never sees half a report).

use std::path::Path;

use anyhow::{Context, Result};

use crate::fsutil;
use crate::report::{self, view::RenderInput};

pub const NAME: &str = "render";
pub const VERSION: u32 = 3;

pub const HTML: &str = "report.html";
pub const JSON: &str = "report.json";
pub const SUMMARY: &str = "summary.md";

/// Renders and writes the three report files; returns their names (as `out:<name>`, see
/// [`crate::cache::Cache::freshness`]) and sizes.
pub fn run(
    input: &RenderInput,
    templates: &[(String, String)],
    out_dir: &Path,
) -> Result<Vec<(String, u64)>> {
    let view = report::view::build(input);
    let html = report::render_html(templates, &view)?;
    let json = serde_json::to_vec_pretty(&report::json::build(input))
        .context("could not serialise report.json")?;
    let summary = report::summary::build(&view);
    let mut outputs = Vec::new();
    for (name, bytes) in [
        (HTML, html.as_bytes()),
        (JSON, json.as_slice()),
        (SUMMARY, summary.as_bytes()),
    ] {
        fsutil::write_atomic(&out_dir.join(name), bytes)?;
        outputs.push((format!("out:{name}"), bytes.len() as u64));
    }
    Ok(outputs)
}
