//! The orchestrator: a flat list of stage calls, ingest → sample → statistics → dedup →
//! embed → render, each followed by a status line ("fresh", or "stale: why") and a timing.
//!
//! A stage reruns when its fingerprint changed, its cache entry is missing or damaged, or
//! `--force` names it or an earlier stage ([`Freshness`], with a typed [`StaleReason`]). A
//! fresh stage's artifact is loaded only if a later stage needs it; if loading fails, the
//! stage is recomputed with a warning. The caching side of each stage (its name, version,
//! fingerprint inputs, load and save) is in [`cached`]; ingest's own steps in [`ingest`].
//! Every run writes `run.json` ([`crate::runlog::RunLog`]) into the output folder, for
//! scripts, benchmarks and tests.
//!
//! Nothing imports this module but `lib.rs`: stages, the cache and the report know nothing
//! of the orchestrator.

pub mod cached;
pub mod diff;
mod ingest;
mod render;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cache::{Cache, FingerprintInputs, Freshness, StaleReason};
use crate::config::{Force, Settings};
use crate::fsutil;
use crate::gate::GateOutcome;
use crate::progress::Progress;
use crate::runlog::{RunLog, StageReport, StageStatus, peak_rss_bytes};
use crate::stage::Stage;
use crate::stages::embed::onnx::OnnxEmbedder;
use crate::stages::ingest::{Ingested, RejectKind, Scan};
use crate::stages::{render as render_stage, sample, statistics};
use cached::{CachedStage, DedupStage, EmbedStage, Fingerprints, SampleStage, StatisticsStage};

/// Runs the whole pipeline on `settings.dataset`, writing into `settings.out`.
pub fn run(settings: &Settings) -> Result<RunLog> {
    let started = Instant::now();
    let mut ctx = Ctx::new(settings)?;
    let file = &settings.file;
    ctx.progress.line(&format!(
        "aldente {} — {} → {}",
        crate::TOOL_VERSION,
        settings.dataset.display(),
        settings.out.display()
    ));

    // A model is loaded and checked before anything else, so a bad one stops the run at
    // once with what to do.
    let model = match &file.embed.model {
        Some(path) => Some(OnnxEmbedder::load(path, &file.embed)?),
        None => None,
    };
    ingest::run(&mut ctx)?;
    let (progress, cache) = (ctx.progress, ctx.cache.clone());
    let sample_run = |a: &Ingested| sample::run(&a.artifact, &file.sample);
    let sample = ctx.stage::<SampleStage>(&sample_run)?;
    let statistics_run = |a: &Ingested| statistics::run(a, &file.statistics);
    let statistics = ctx.stage::<StatisticsStage>(&statistics_run)?;
    let dedup_run = |a: &Ingested| DedupStage::run_with_pairs(&cache, a, &file.dedup, &progress);
    let dedup = ctx.stage::<DedupStage>(&dedup_run)?;
    let embed_run = |a: &Ingested| {
        EmbedStage::run_with_store(&cache, a, &file.embed, model.as_ref(), &progress)
    };
    let embed = ctx.stage::<EmbedStage>(&embed_run)?;
    render::run(
        &mut ctx,
        render::Upstream {
            sample: (sample, &sample_run),
            statistics: (statistics, &statistics_run),
            dedup: (dedup, &dedup_run),
            embed: (embed, &embed_run),
        },
    )?;
    ctx.finish(started)
}

/// `aldente demo`: generates the synthetic dataset inside the output folder (once per seed
/// and generator version), then reports on it.
pub fn run_demo(settings: &Settings, seed: u64) -> Result<RunLog> {
    let data_dir = settings.out.join("demo-dataset");
    let truth_path = settings.out.join("demo-truth.json");
    let existing: Option<crate::demo::DemoTruth> = std::fs::read(&truth_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let reusable = existing
        .as_ref()
        .is_some_and(|t| t.seed == seed && t.version == crate::demo::DEMO_VERSION)
        && data_dir.is_dir();
    if !reusable {
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .with_context(|| format!("could not clear {}", data_dir.display()))?;
        }
        fsutil::create_dir_all(&settings.out)?;
        let truth = crate::demo::generate(&data_dir, seed)?;
        let json =
            serde_json::to_vec_pretty(&truth).context("could not serialise the demo truth")?;
        fsutil::write_atomic(&truth_path, &json)?;
    }
    let mut settings = settings.clone();
    settings.dataset = data_dir;
    run(&settings)
}

/// A downstream stage after its decision: its inputs, and its artifact when it ran in this
/// run (a fresh stage's artifact is loaded only if render needs it).
struct Pending<S: CachedStage> {
    inputs: FingerprintInputs,
    computed: Option<S::Artifact>,
}

/// The state of one run, threaded through the stage calls.
struct Ctx<'a> {
    settings: &'a Settings,
    cache: Cache,
    progress: Progress,
    /// Ingest's file scan, kept until ingest's artifact exists (see [`Ctx::ingested`]).
    scan: Option<Scan>,
    ingested: Option<Ingested>,
    ingest_inputs: Option<FingerprintInputs>,
    fingerprints: Fingerprints,
    reports: Vec<StageReport>,
    warnings: Vec<String>,
    /// The gate's outcome, once render has evaluated it (or read it back).
    gate: Option<GateOutcome>,
}

impl<'a> Ctx<'a> {
    fn new(settings: &'a Settings) -> Result<Ctx<'a>> {
        fsutil::create_dir_all(&settings.out)?;
        Ok(Ctx {
            settings,
            cache: Cache::new(&settings.out),
            progress: Progress::new(settings.quiet),
            scan: None,
            ingested: None,
            ingest_inputs: None,
            fingerprints: Fingerprints::new(),
            reports: Vec::new(),
            warnings: Vec::new(),
            gate: None,
        })
    }

    fn forced(&self, stage: Stage) -> bool {
        match self.settings.force {
            Force::None => false,
            Force::All => true,
            Force::From(first) => stage >= first,
        }
    }

    /// Fresh or stale (and why) for these inputs; records the stage's fingerprint for the
    /// stages downstream of it.
    fn decide(&mut self, inputs: &FingerprintInputs) -> Freshness {
        self.fingerprints.insert(inputs.stage, inputs.fingerprint());
        if self.forced(inputs.stage) {
            return Freshness::Stale(StaleReason::Forced);
        }
        self.cache.freshness(inputs, &self.settings.out)
    }

    fn warn(&mut self, text: String) {
        self.progress.line(&format!("  warning: {text}"));
        self.warnings.push(text);
    }

    /// Prints the stage line and adds the stage to the run log.
    fn record(&mut self, stage: Stage, freshness: &Freshness, started: Instant, detail: String) {
        let seconds = started.elapsed().as_secs_f64();
        let (status, reason) = match freshness {
            Freshness::Fresh => (StageStatus::Fresh, None),
            Freshness::Stale(why @ StaleReason::Forced) => {
                (StageStatus::Forced, Some(why.describe()))
            }
            Freshness::Stale(why) => (StageStatus::Stale, Some(why.describe())),
        };
        let shown = match &reason {
            Some(why) => format!("{}: {why}", status.as_str()),
            None => status.as_str().to_string(),
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" — {detail}")
        };
        let name = stage.name();
        self.progress
            .line(&format!("  {name:<11} {seconds:>6.2}s  {shown}{detail}"));
        self.reports.push(StageReport {
            name: stage,
            status,
            reason,
            seconds,
            ingest: None,
            dedup: None,
            embed: None,
        });
    }

    /// The ingest artifact: already in memory, loaded from the cache, or (when the cache
    /// entry cannot be read) rebuilt from the scan.
    fn ingested(&mut self) -> Result<&Ingested> {
        if self.ingested.is_none() {
            match cached::IngestStage::load(&self.cache) {
                Ok(loaded) => self.ingested = Some(loaded),
                Err(err) => {
                    self.warn(format!("{err:#}; recomputing ingest"));
                    ingest::rebuild(self)?;
                }
            }
        }
        self.ingested.as_ref().context("internal: ingest missing")
    }

    /// Decides a stage that reads only ingest, and runs it if it is stale.
    fn stage<S: CachedStage>(
        &mut self,
        compute: &dyn Fn(&Ingested) -> S::Artifact,
    ) -> Result<Pending<S>> {
        let started = Instant::now();
        let inputs = S::inputs(&self.settings.file, &self.fingerprints);
        let freshness = self.decide(&inputs);
        if freshness == Freshness::Stale(StaleReason::Forced) {
            S::forget_reusable(&self.cache)?;
        }
        let computed = match &freshness {
            Freshness::Fresh => None,
            Freshness::Stale(_) => Some(self.compute_and_save::<S>(&inputs, compute)?),
        };
        let detail = computed.as_ref().map(S::detail).unwrap_or_default();
        self.record(S::STAGE, &freshness, started, detail);
        if let Some(artifact) = &computed {
            if let Some(report) = self.reports.last_mut() {
                S::log(artifact, report);
            }
            for warning in S::warnings(artifact) {
                self.warn(warning);
            }
        }
        Ok(Pending { inputs, computed })
    }

    fn compute_and_save<S: CachedStage>(
        &mut self,
        inputs: &FingerprintInputs,
        compute: &dyn Fn(&Ingested) -> S::Artifact,
    ) -> Result<S::Artifact> {
        self.cache.invalidate(S::STAGE)?;
        let artifact = compute(self.ingested()?);
        let outputs = S::save(&self.cache, &artifact)?;
        self.cache.commit(inputs, outputs)?;
        Ok(artifact)
    }

    /// A downstream artifact for render: the one computed in this run, else the cached one,
    /// else (cache damaged) computed again.
    fn materialise<S: CachedStage>(
        &mut self,
        pending: Pending<S>,
        compute: &dyn Fn(&Ingested) -> S::Artifact,
    ) -> Result<S::Artifact> {
        if let Some(artifact) = pending.computed {
            return Ok(artifact);
        }
        match S::load(&self.cache) {
            Ok(artifact) => Ok(artifact),
            Err(err) => {
                self.warn(format!("{err:#}; recomputing {}", S::STAGE));
                self.compute_and_save::<S>(&pending.inputs, compute)
            }
        }
    }

    /// Writes run.json and the closing line.
    fn finish(self, started: Instant) -> Result<RunLog> {
        let ingest_units = self
            .reports
            .first()
            .and_then(|r| r.ingest)
            .map_or(0, |c| c.units);
        let (images, unreadable) = match &self.ingested {
            Some(ingested) => (
                ingested.artifact.images.len(),
                ingested
                    .artifact
                    .rejected
                    .iter()
                    .filter(|r| r.kind == RejectKind::Unreadable)
                    .count(),
            ),
            None => (ingest_units, 0),
        };
        let log = RunLog {
            tool_version: crate::TOOL_VERSION.to_string(),
            stages: self.reports,
            total_seconds: started.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
            warnings: self.warnings,
            images,
            unreadable,
            gate: self.gate.filter(|g| !g.checks.is_empty()),
        };
        let json = serde_json::to_vec_pretty(&log).context("could not serialise run.json")?;
        fsutil::write_atomic(&self.settings.out.join("run.json"), &json)?;
        self.progress.line(&format!(
            "done in {:.2}s — open {}",
            log.total_seconds,
            self.settings.out.join(render_stage::HTML).display()
        ));
        if let Some(gate) = &log.gate {
            print_gate(&self.progress, gate);
        }
        Ok(log)
    }
}

/// The gate's lines on the terminal. A failed gate is printed even with `--quiet`: it is
/// why the process exits with [`crate::gate::EXIT_CODE`].
pub(super) fn print_gate(progress: &Progress, gate: &GateOutcome) {
    for line in gate.lines() {
        if gate.passed {
            progress.line(&line);
        } else {
            eprintln!("{line}");
        }
    }
}

/// The dataset folder's own name, shown in the report (never the absolute path); for a
/// manifest given as a file, its folder's name.
fn dataset_name(root: &Path) -> String {
    let mut resolved: PathBuf = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if resolved.is_file() {
        resolved.pop();
    }
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".to_string())
}
