//! The ingest stage's call: discover the files, scan them against the stat cache, decide,
//! and decode only what is new ([`crate::stages::ingest`] does the work; this file feeds it
//! what earlier runs left and stores what it returns).
//!
//! Ingest differs from the other stages in one way: its fingerprint is known only after the
//! scan (it holds every unit's path, label and content hash), and a cold run decodes during
//! the scan, since there is nothing to reuse.

use std::time::Instant;

use anyhow::{Context, Result};

use super::Ctx;
use super::cached::{CachedStage, IngestStage};
use crate::cache::Freshness;
use crate::config::{Force, Settings};
use crate::dataset;
use crate::decode::DecodeOptions;
use crate::stages::ingest::{self, IngestCounts};
use crate::text::thousands;

/// Runs (or reuses) ingest; leaves the scan, and the artifact when it was built, in `ctx`.
pub(super) fn run(ctx: &mut Ctx) -> Result<()> {
    let started = Instant::now();
    let settings = ctx.settings;
    let config = &settings.file.ingest;
    let discovery = dataset::discover(
        &settings.dataset,
        &settings.file.dataset,
        config.follow_symlinks,
        Some(&settings.out),
    )?;
    let force_all = settings.force == Force::All;
    let old_stat = if force_all {
        Default::default()
    } else {
        let (stat, warning) = IngestStage::load_stat_cache(&ctx.cache);
        if let Some(warning) = warning {
            // Printed only, as before: the run log's warnings are about findings.
            ctx.progress.line(&format!("  warning: {warning}"));
        }
        stat
    };
    let cold = force_all || !IngestStage::has_previous(&ctx.cache);
    let options = decode_options(settings);
    let mut scan = ingest::scan(discovery, &old_stat, cold.then_some(options), &ctx.progress);
    let new_stat = scan.stat_cache.take();
    let inputs = ingest::fingerprint(&scan, config);
    let mut counts = IngestCounts {
        files_read: scan.files_read,
        files: scan.discovery.files.len(),
        units: scan.units.len(),
        ..Default::default()
    };
    let freshness = ctx.decide(&inputs);
    ctx.ingest_inputs = Some(inputs);
    if let Freshness::Stale(_) = &freshness {
        ctx.cache.invalidate(IngestStage::STAGE)?;
        let previous = if cold {
            None
        } else {
            match IngestStage::load(&ctx.cache) {
                Ok(previous) => Some(previous),
                Err(err) => {
                    ctx.warn(format!("{err:#}; every image will be decoded again"));
                    None
                }
            }
        };
        counts = build(ctx, scan, previous)?;
    } else {
        ctx.scan = Some(scan);
    }
    if let Some(stat) = new_stat {
        IngestStage::save_stat_cache(&ctx.cache, &stat)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = if counts.decoded > 0 {
        format!(
            " ({:.0} images/s)",
            counts.decoded as f64 / seconds.max(1e-9)
        )
    } else {
        String::new()
    };
    let detail = format!(
        "{} files ({} images or records); {} read, {} decoded{rate}",
        thousands(counts.files as u64),
        thousands(counts.units as u64),
        thousands(counts.files_read as u64),
        thousands(counts.decoded as u64),
    );
    ctx.record(IngestStage::STAGE, &freshness, started, detail);
    if let Some(last) = ctx.reports.last_mut() {
        last.ingest = Some(counts);
    }
    Ok(())
}

/// Rebuilds the artifact from the kept scan when a fresh entry turned out unreadable.
pub(super) fn rebuild(ctx: &mut Ctx) -> Result<()> {
    let scan = ctx.scan.take().context("internal: scan already consumed")?;
    ctx.cache.invalidate(IngestStage::STAGE)?;
    build(ctx, scan, None).map(|_| ())
}

/// Decodes what is new, stores the artifact and keeps it in `ctx`.
fn build(
    ctx: &mut Ctx,
    scan: ingest::Scan,
    previous: Option<ingest::Ingested>,
) -> Result<IngestCounts> {
    let inputs = ctx
        .ingest_inputs
        .clone()
        .context("internal: ingest not decided")?;
    let (built, counts) =
        ingest::build(scan, previous, decode_options(ctx.settings), &ctx.progress)?;
    let outputs = IngestStage::save(&ctx.cache, &built)?;
    ctx.cache.commit(&inputs, outputs)?;
    ctx.ingested = Some(built);
    Ok(counts)
}

/// Decoding limits and thumbnail size from the ingest settings (validated in config).
fn decode_options(settings: &Settings) -> DecodeOptions {
    DecodeOptions {
        thumbnail_size: settings.file.ingest.thumbnail_size,
        max_pixels: settings.file.ingest.max_pixels,
    }
}
