//! `aldente diff OLD NEW`: brings each side to a report run's outputs, then compares them.
//!
//! A side that is an aldente output folder (report.json beside cache/) is read as it is:
//! nothing is decoded. A side that is a dataset folder is reported into `OUT/old` or
//! `OUT/new` with the ordinary pipeline, so it gets its own cache and a rerun of the diff
//! (the next commit of a pull request) redoes only what changed. The comparison itself is
//! [`crate::diff::compare`]; this module loads its inputs and writes diff.html, diff.json and
//! diff.md into the output folder, and nothing anywhere else.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::cached::{CachedStage, IngestStage, StatisticsStage};
use crate::cache::Cache;
use crate::config::Settings;
use crate::diff::{self, ReportFindings, Side};
use crate::fsutil;
use crate::gate::{Gate, GateOutcome};
use crate::progress::Progress;
use crate::stages::ingest::Ingested;
use crate::stages::render as render_stage;
use crate::stages::statistics::StatisticsArtifact;

/// One side, loaded.
struct Loaded {
    ingested: Ingested,
    statistics: StatisticsArtifact,
    report: ReportFindings,
}

impl Loaded {
    fn side(&self) -> Side<'_> {
        Side {
            ingested: &self.ingested,
            statistics: &self.statistics,
            report: self.report.clone(),
        }
    }
}

/// Runs the diff; returns the gate's outcome (its `checks` are empty without a gate).
pub fn run(settings: &Settings, old: &Path, new: &Path) -> Result<GateOutcome> {
    let started = Instant::now();
    let progress = Progress::new(settings.quiet);
    fsutil::create_dir_all(&settings.out)?;
    progress.line(&format!(
        "aldente {} diff — {} → {} → {}",
        crate::TOOL_VERSION,
        old.display(),
        new.display(),
        settings.out.display()
    ));
    let old_dir = prepare(settings, &progress, "old", old)?;
    let new_dir = prepare(settings, &progress, "new", new)?;
    let old_side = load("old", old, &old_dir)?;
    let new_side = load("new", new, &new_dir)?;
    let (old_view, new_view) = (old_side.side(), new_side.side());
    let result = diff::compare(
        &old_view,
        &new_view,
        &settings.gate,
        settings.file.statistics.imbalance_ratio,
    );
    let templates = crate::report::templates(settings.file.report.templates_dir.as_deref())?;
    let style = templates
        .iter()
        .find(|(name, _)| name == "style.css")
        .map(|(_, text)| text.as_str())
        .unwrap_or_default();
    let html = diff::html::render(&result, &old_view, &new_view, style)?;
    let json = serde_json::to_vec_pretty(&result).context("could not serialise diff.json")?;
    let markdown = diff::markdown::build(&result);
    fsutil::write_atomic(&settings.out.join(diff::JSON), &json)?;
    fsutil::write_atomic(&settings.out.join(diff::MARKDOWN), markdown.as_bytes())?;
    fsutil::write_atomic(&settings.out.join(diff::HTML), html.as_bytes())?;
    let s = &result.summary;
    progress.line(&format!(
        "  diff: {} added, {} removed, {} changed, {} moved, {} relabelled, {} unchanged",
        s.added, s.removed, s.changed, s.moved, s.relabelled, s.unchanged
    ));
    progress.line(&format!(
        "done in {:.2}s — open {}",
        started.elapsed().as_secs_f64(),
        settings.out.join(diff::HTML).display()
    ));
    super::print_gate(&progress, &result.gate);
    Ok(result.gate)
}

/// Whether `dir` is the output folder of a report run.
fn is_output_folder(dir: &Path) -> bool {
    dir.join(render_stage::JSON).is_file() && dir.join("cache").is_dir()
}

/// The output folder of one side: the side itself when it is one, else `OUT/<label>` after
/// reporting the dataset into it.
fn prepare(settings: &Settings, progress: &Progress, label: &str, side: &Path) -> Result<PathBuf> {
    if is_output_folder(side) {
        progress.line(&format!(
            "{label}: reading the report in {}",
            side.display()
        ));
        return Ok(side.to_path_buf());
    }
    if !side.is_dir() {
        bail!(
            "{} ({label} version) is not a folder: give a dataset folder or the output folder of `aldente report`",
            side.display()
        );
    }
    let out = settings.out.join(label);
    // Reporting a dataset into a folder inside it would make the next run read the report.
    if let (Ok(data), Ok(out_dir)) = (side.canonicalize(), settings.out.canonicalize())
        && out_dir.starts_with(&data)
    {
        bail!(
            "the output folder {} is inside the dataset {} ({label} version): choose --out outside it",
            settings.out.display(),
            side.display()
        );
    }
    progress.line(&format!(
        "{label}: reporting {} into {}",
        side.display(),
        out.display()
    ));
    let mut side_settings = settings.clone();
    side_settings.dataset = side.to_path_buf();
    side_settings.out = out.clone();
    // The gate judges the diff, not each version on its own.
    side_settings.gate = Gate::default();
    super::run(&side_settings)
        .with_context(|| format!("could not report on the {label} version {}", side.display()))?;
    Ok(out)
}

/// Reads one side's ingest table, statistics and report.json.
fn load(label: &str, given: &Path, dir: &Path) -> Result<Loaded> {
    let again = || {
        format!(
            "run `aldente report DATASET --out {}` again, or give the dataset folder instead",
            dir.display()
        )
    };
    let cache = Cache::new(dir);
    let ingested = IngestStage::load(&cache).with_context(|| {
        format!(
            "the cache of the {label} version {} cannot be read; {}",
            given.display(),
            again()
        )
    })?;
    let statistics = StatisticsStage::load(&cache).with_context(|| {
        format!(
            "the statistics of the {label} version {} cannot be read; {}",
            given.display(),
            again()
        )
    })?;
    let json_path = dir.join(render_stage::JSON);
    let bytes = fsutil::read(&json_path)?;
    let report: ReportFindings = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a report.json of aldente; {}",
            json_path.display(),
            again()
        )
    })?;
    if report.schema_version != crate::report::json::SCHEMA_VERSION {
        bail!(
            "{} has schema_version {} (this aldente reads {}); {}",
            json_path.display(),
            report.schema_version,
            crate::report::json::SCHEMA_VERSION,
            again()
        );
    }
    let images = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["dataset"]["images"].as_u64());
    if images != Some(ingested.artifact.images.len() as u64) {
        bail!(
            "{} and the cache beside it describe different runs ({} images in report.json, {} in the cache); {}",
            json_path.display(),
            images.map_or("no".to_string(), |n| n.to_string()),
            ingested.artifact.images.len(),
            again()
        );
    }
    Ok(Loaded {
        ingested,
        statistics,
        report,
    })
}
