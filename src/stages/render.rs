//! Stage 6, render: fills the templates into report.html and builds report.json,
//! images.parquet and summary.md. It writes nothing itself: the pipeline writes the four
//! files into the output folder (atomically: a reader never sees half a report).

use anyhow::{Context, Result};

use crate::report::{self, view::RenderInput};
use crate::stage::Stage;

pub const STAGE: Stage = Stage::Render;
/// 4: images.parquet.
pub const VERSION: u32 = 4;

pub const HTML: &str = "report.html";
pub const JSON: &str = "report.json";
pub const SUMMARY: &str = "summary.md";

/// The four report files: (file name in the output folder, contents).
pub struct Rendered {
    pub files: Vec<(&'static str, Vec<u8>)>,
}

/// Renders the report files.
pub fn run(input: &RenderInput, templates: &[(String, String)]) -> Result<Rendered> {
    let view = report::view::build(input);
    let html = report::render_html(templates, &view)?;
    let json = serde_json::to_vec_pretty(&report::json::build(input))
        .context("could not serialise report.json")?;
    let summary = report::summary::build(&view);
    let table = report::parquet::write(&report::parquet::columns(input))?;
    Ok(Rendered {
        files: vec![
            (HTML, html.into_bytes()),
            (JSON, json),
            (report::parquet::FILE, table),
            (SUMMARY, summary.into_bytes()),
        ],
    })
}
