//! The render stage's call: decide, and only when the report is stale, take the four
//! artifacts it reads (computed in this run, or loaded from the cache, or recomputed when
//! the cache cannot be read), fill the templates and write the three report files.

use std::path::Path;
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
use crate::review::reviewfile::{FILE as REVIEW_FILE, ReviewFile};
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
    let (review, review_digest) = review_file(ctx);
    // The gate is not a stage setting, but its outcome is written into report.json and
    // summary.md, so another gate renders again (and nothing else).
    let inputs = RenderStage::inputs(file, &ctx.fingerprints)
        .with_extra("templates", report::templates_digest(&templates))
        .with_extra("dataset name", dataset_name.clone())
        .with_extra("gate", gate_key(settings))
        .with_extra("review file", review_digest);
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
            review: &review.as_ref().map(|r| r.judgements()).unwrap_or_default(),
            review_file: review.as_ref().map(|_| REVIEW_FILE.to_string()),
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

/// The dataset's review file (`aldente-review.json` in its root folder; a manifest given as
/// a file: in the manifest's folder), and its digest for render's fingerprint: editing the
/// file renders again, and touches no other stage. An unreadable file is a warning, and the
/// report shows every finding as open.
fn review_file(ctx: &mut Ctx) -> (Option<ReviewFile>, String) {
    let dataset = &ctx.settings.dataset;
    let root = if dataset.is_file() {
        dataset.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        dataset.clone()
    };
    let path = root.join(REVIEW_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return (None, "none".into());
    };
    let digest = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
    match ReviewFile::parse(&bytes) {
        Ok(review) => (Some(review), digest),
        Err(err) => {
            ctx.warn(format!(
                "{} is not a usable review file ({err:#}); every finding is shown as open",
                path.display()
            ));
            (None, digest)
        }
    }
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
