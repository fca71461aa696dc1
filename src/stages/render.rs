//! Stage 6, render: fills the templates into report.html and builds report.json,
//! images.parquet and summary.md. It writes nothing itself: the pipeline writes the four
//! files into the output folder (atomically: a reader never sees half a report).
//!
//! The gate (`--fail-on`) is evaluated here, over report.json's findings, and its outcome
//! goes into report.json (`gate`) and summary.md; a rerun whose render is fresh reads it
//! back from report.json ([`gate_of`]).

use anyhow::{Context, Result};

use crate::gate::{Gate, GateOutcome};
use crate::report::{self, view::RenderInput};
use crate::stage::Stage;

pub const STAGE: Stage = Stage::Render;
/// 4: images.parquet; report.json and summary.md hold the gate's outcome. 5: report.json's
/// `report_id`, `review`, and findings' content hashes and `reviewed`.
pub const VERSION: u32 = 5;

pub const HTML: &str = "report.html";
pub const JSON: &str = "report.json";
pub const SUMMARY: &str = "summary.md";

/// The four report files: (file name in the output folder, contents), and the gate's
/// outcome written into them.
pub struct Rendered {
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub gate: GateOutcome,
}

/// Renders the report files. `default_imbalance` is the ratio the `imbalance` check uses
/// without a threshold of its own (`statistics.imbalance_ratio`).
pub fn run(
    input: &RenderInput,
    templates: &[(String, String)],
    gate: &Gate,
    default_imbalance: f64,
) -> Result<Rendered> {
    let view = report::view::build(input);
    let html = report::render_html(templates, &view)?;
    let mut report_json = report::json::build(input);
    let outcome = gate.evaluate(
        &report::json::gate_findings(&report_json),
        default_imbalance,
    );
    report_json.gate = outcome.clone();
    let json =
        serde_json::to_vec_pretty(&report_json).context("could not serialise report.json")?;
    let summary = report::summary::build(&view, &outcome);
    let table = report::parquet::write(&report::parquet::columns(input))?;
    Ok(Rendered {
        files: vec![
            (HTML, html.into_bytes()),
            (JSON, json),
            (report::parquet::FILE, table),
            (SUMMARY, summary.into_bytes()),
        ],
        gate: outcome,
    })
}

/// The gate's outcome stored in a report.json this program wrote.
pub fn gate_of(report_json: &[u8]) -> Result<GateOutcome> {
    #[derive(serde::Deserialize)]
    struct WithGate {
        gate: GateOutcome,
    }
    let parsed: WithGate =
        serde_json::from_slice(report_json).context("report.json has no readable `gate`")?;
    Ok(parsed.gate)
}
