//! The render stage's call: decide, and only when the report is stale, take the four
//! artifacts it reads (computed in this run, or loaded from the cache, or recomputed when
//! the cache cannot be read), fill the templates and write the three report files.

use std::time::Instant;

use anyhow::Result;

use super::cached::{
    CachedStage, DedupStage, EmbedStage, RenderStage, SampleStage, StatisticsStage,
};
use super::{Ctx, Pending, dataset_name};
use crate::cache::{Freshness, StaleReason};
use crate::config::Settings;
use crate::fsutil;
use crate::report;
use crate::stage::Stage;
use crate::stages::ingest::Ingested;
use crate::stages::render as render_stage;

/// A stage render reads, as decided in this run, and how to compute it again.
pub(super) type Input<'f, S> = (
    Pending<S>,
    &'f dyn Fn(&Ingested) -> <S as CachedStage>::Artifact,
);

/// The four stages render reads.
pub(super) struct Upstream<'f> {
    pub sample: Input<'f, SampleStage>,
    pub statistics: Input<'f, StatisticsStage>,
    pub dedup: Input<'f, DedupStage>,
    pub embed: Input<'f, EmbedStage>,
}

pub(super) fn run(ctx: &mut Ctx, upstream: Upstream) -> Result<()> {
    let started = Instant::now();
    let settings = ctx.settings;
    let file = &settings.file;
    let templates = report::templates(file.report.templates_dir.as_deref())?;
    let dataset_name = dataset_name(&settings.dataset);
    // The gate is not a stage setting, but its outcome is written into report.json and
    // summary.md, so another gate renders again (and nothing else).
    let inputs = RenderStage::inputs(file, &ctx.fingerprints)
        .with_extra("templates", report::templates_digest(&templates))
        .with_extra("dataset name", dataset_name.clone())
        .with_extra("gate", gate_key(settings));
    let mut freshness = ctx.decide(&inputs);
    if freshness == Freshness::Fresh {
        let stored = fsutil::read(&settings.out.join(render_stage::JSON))
            .and_then(|bytes| render_stage::gate_of(&bytes));
        match stored {
            Ok(gate) => ctx.gate = Some(gate),
            Err(err) => {
                ctx.warn(format!("{err:#}; rendering again"));
                freshness = Freshness::Stale(StaleReason::OutputUnreadable {
                    path: render_stage::JSON.to_string(),
                });
            }
        }
    }
    if let Freshness::Stale(_) = &freshness {
        ctx.cache.invalidate(Stage::Render)?;
        let sample = ctx.materialise(upstream.sample.0, upstream.sample.1)?;
        let statistics = ctx.materialise(upstream.statistics.0, upstream.statistics.1)?;
        let dedup = ctx.materialise(upstream.dedup.0, upstream.dedup.1)?;
        let embed = ctx.materialise(upstream.embed.0, upstream.embed.1)?;
        let stages = ctx.reports.clone();
        let input = report::view::RenderInput {
            title: file
                .report
                .title
                .clone()
                .unwrap_or_else(|| dataset_name.clone()),
            dataset_name,
            ingested: ctx.ingested()?,
            sample: &sample,
            statistics: &statistics,
            dedup: &dedup,
            embed: &embed,
            stages: &stages,
            settings_toml: toml::to_string_pretty(file).unwrap_or_default(),
        };
        let rendered = render_stage::run(
            &input,
            &templates,
            &settings.gate,
            file.statistics.imbalance_ratio,
        )?;
        let outputs = RenderStage::save(&ctx.cache, &rendered)?;
        ctx.cache.commit(&inputs, outputs)?;
        ctx.gate = Some(rendered.gate);
    }
    let detail = format!("{}", settings.out.join(render_stage::HTML).display());
    ctx.record(Stage::Render, &freshness, started, detail);
    Ok(())
}

/// The gate as it enters render's fingerprint: the checks, and the default ratio when
/// `imbalance` has none of its own.
fn gate_key(settings: &Settings) -> String {
    let gate = &settings.gate;
    let default_ratio = gate
        .checks
        .iter()
        .any(|c| c.check == crate::gate::Check::Imbalance && c.threshold.is_none());
    if default_ratio {
        format!(
            "{} (imbalance default {})",
            gate.describe(),
            settings.file.statistics.imbalance_ratio
        )
    } else {
        gate.describe()
    }
}
