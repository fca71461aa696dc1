//! The orchestrator: a flat list of stage calls, ingest → sample → statistics → dedup →
//! embed → render, each followed by a status line ("fresh", or "stale: why") and a timing.
//!
//! A stage reruns when its fingerprint changed, its cache entry is missing or damaged, or
//! `--force` names it or an earlier stage. A fresh stage's artifact is loaded only if a later
//! stage needs it; if loading fails, the stage is recomputed with a warning. Every run
//! writes `run.json` (per-stage status, reasons, timings, decode counts) into the output
//! folder, for scripts, benchmarks and tests.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::cache::{Cache, FingerprintInputs, Freshness};
use crate::config::{Force, Settings};
use crate::dataset;
use crate::decode::DecodeOptions;
use crate::fsutil;
use crate::progress::Progress;
use crate::report;
use crate::stages::ingest::{self, IngestCounts, Ingested, Scan};
use crate::stages::{dedup, embed, render, sample, statistics};

/// The stages in order; `--force=STAGE` reruns that one and every later one.
pub const STAGES: &[&str] = &[
    ingest::NAME,
    sample::NAME,
    statistics::NAME,
    dedup::NAME,
    embed::NAME,
    render::NAME,
];

/// What happened to one stage in this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub name: String,
    /// "fresh", "stale" or "forced".
    pub status: String,
    pub reason: Option<String>,
    pub seconds: f64,
    /// Ingest only: files read, units decoded and reused.
    pub ingest: Option<IngestCounts>,
    /// Embed only, when it ran: feature vectors computed and reused, time per step.
    #[serde(default)]
    pub embed: Option<embed::EmbedCounts>,
}

/// The log of one run, written to `<out>/run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLog {
    pub tool_version: String,
    pub stages: Vec<StageReport>,
    pub total_seconds: f64,
    /// Peak resident memory of the process (Linux), bytes.
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
    pub images: usize,
    pub unreadable: usize,
}

struct Ctx<'a> {
    settings: &'a Settings,
    cache: Cache,
    progress: Progress,
    scan: Option<Scan>,
    ingested: Option<Ingested>,
    ingest_inputs: FingerprintInputs,
    reports: Vec<StageReport>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn forced(&self, stage: &str) -> bool {
        match &self.settings.force {
            Force::None => false,
            Force::All => true,
            Force::From(first) => {
                let at = |s: &str| STAGES.iter().position(|x| *x == s);
                at(stage) >= at(first)
            }
        }
    }

    fn decide(&self, inputs: &FingerprintInputs) -> Freshness {
        if self.forced(&inputs.stage) {
            return Freshness::Stale("forced (--force)".into());
        }
        self.cache.freshness(inputs, &self.settings.out)
    }

    fn warn(&mut self, text: String) {
        self.progress.line(&format!("  warning: {text}"));
        self.warnings.push(text);
    }

    fn record(&mut self, name: &str, freshness: &Freshness, seconds: f64, detail: String) {
        let (status, reason) = match freshness {
            Freshness::Fresh => ("fresh", None),
            Freshness::Stale(why) if why.starts_with("forced") => ("forced", Some(why.clone())),
            Freshness::Stale(why) => ("stale", Some(why.clone())),
        };
        let shown = match &reason {
            Some(why) => format!("{status}: {why}"),
            None => status.to_string(),
        };
        self.progress.line(&format!(
            "  {name:<11} {seconds:>6.2}s  {shown}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(" — {detail}")
            }
        ));
        self.reports.push(StageReport {
            name: name.to_string(),
            status: status.to_string(),
            reason,
            seconds,
            ingest: None,
            embed: None,
        });
    }

    fn decode_options(&self) -> DecodeOptions {
        decode_options(self.settings)
    }

    /// The ingest artifact: already in memory, loaded from the cache, or (when the cache
    /// entry cannot be read) rebuilt from the scan.
    fn ingested(&mut self) -> Result<&Ingested> {
        if self.ingested.is_none() {
            match ingest::load(&self.cache) {
                Ok(loaded) => self.ingested = Some(loaded),
                Err(err) => {
                    self.warn(format!("{err:#}; recomputing ingest"));
                    let scan = self
                        .scan
                        .take()
                        .context("internal: scan already consumed")?;
                    let (built, _) =
                        ingest::build(scan, None, self.decode_options(), &self.progress)?;
                    self.cache.invalidate(ingest::NAME)?;
                    let outputs = ingest::save(&self.cache, &built)?;
                    self.cache.commit(&self.ingest_inputs, outputs)?;
                    self.ingested = Some(built);
                }
            }
        }
        self.ingested.as_ref().context("internal: ingest missing")
    }

    /// Runs a stage that reads only ingest, if it is stale. Returns its artifact when it ran.
    fn run_downstream<T: Serialize>(
        &mut self,
        inputs: &FingerprintInputs,
        compute: &dyn Fn(&Ingested) -> T,
    ) -> Result<Option<T>> {
        let started = Instant::now();
        let freshness = self.decide(inputs);
        let artifact = match &freshness {
            Freshness::Fresh => None,
            Freshness::Stale(_) => Some(self.compute_and_save(inputs, compute)?),
        };
        self.record(
            &inputs.stage,
            &freshness,
            started.elapsed().as_secs_f64(),
            String::new(),
        );
        Ok(artifact)
    }

    fn compute_and_save<T: Serialize>(
        &mut self,
        inputs: &FingerprintInputs,
        compute: &dyn Fn(&Ingested) -> T,
    ) -> Result<T> {
        self.cache.invalidate(&inputs.stage)?;
        let artifact = compute(self.ingested()?);
        let size = self
            .cache
            .write_artifact(&inputs.stage, "artifact.bin", &artifact)?;
        self.cache
            .commit(inputs, vec![("artifact.bin".into(), size)])?;
        Ok(artifact)
    }

    /// A downstream artifact for render: the one computed in this run, else the cached one,
    /// else (cache damaged) computed again.
    fn materialise<T: Serialize + DeserializeOwned>(
        &mut self,
        inputs: &FingerprintInputs,
        computed: Option<T>,
        compute: &dyn Fn(&Ingested) -> T,
    ) -> Result<T> {
        if let Some(artifact) = computed {
            return Ok(artifact);
        }
        match self.cache.read_artifact::<T>(&inputs.stage, "artifact.bin") {
            Ok(artifact) => Ok(artifact),
            Err(err) => {
                self.warn(format!("{err:#}; recomputing {}", inputs.stage));
                self.compute_and_save(inputs, compute)
            }
        }
    }
}

/// Runs the whole pipeline on `settings.dataset`, writing into `settings.out`.
pub fn run(settings: &Settings) -> Result<RunLog> {
    let started = Instant::now();
    let progress = Progress::new(settings.quiet);
    fsutil::create_dir_all(&settings.out)?;
    let cache = Cache::new(&settings.out);
    let config = &settings.file;
    progress.line(&format!(
        "aldente {} — {} → {}",
        crate::TOOL_VERSION,
        settings.dataset.display(),
        settings.out.display()
    ));

    // ingest
    let ingest_started = Instant::now();
    let discovery = dataset::discover(
        &settings.dataset,
        config.ingest.follow_symlinks,
        Some(&settings.out),
    )?;
    let force_all = settings.force == Force::All;
    let old_stat = if force_all {
        Default::default()
    } else {
        ingest::load_stat_cache(&cache, &progress)
    };
    let decode_options = decode_options(settings);
    let cold = force_all || !ingest::has_previous(&cache);
    let mut scan = ingest::scan(
        discovery,
        &old_stat,
        cold.then_some(decode_options),
        &progress,
    );
    let files_read_in_scan = scan.files_read;
    let new_stat = scan.stat_cache.take();
    let ingest_inputs = ingest::fingerprint(&scan, &config.ingest);
    let mut ctx = Ctx {
        settings,
        cache,
        progress,
        scan: Some(scan),
        ingested: None,
        ingest_inputs: ingest_inputs.clone(),
        reports: Vec::new(),
        warnings: Vec::new(),
    };
    let freshness = ctx.decide(&ingest_inputs);
    let mut counts = IngestCounts {
        files_read: files_read_in_scan,
        ..Default::default()
    };
    if let Freshness::Stale(_) = &freshness {
        ctx.cache.invalidate(ingest::NAME)?;
        let previous = if force_all || cold {
            None
        } else {
            match ingest::load(&ctx.cache) {
                Ok(previous) => Some(previous),
                Err(err) => {
                    ctx.warn(format!("{err:#}; every image will be decoded again"));
                    None
                }
            }
        };
        let scan = ctx.scan.take().context("internal: scan missing")?;
        let (built, built_counts) = ingest::build(scan, previous, decode_options, &ctx.progress)?;
        let outputs = ingest::save(&ctx.cache, &built)?;
        ctx.cache.commit(&ingest_inputs, outputs)?;
        counts = built_counts;
        ctx.ingested = Some(built);
    } else if let Some(scan) = &ctx.scan {
        counts.files = scan.discovery.files.len();
        counts.units = scan.units.len();
    }
    if let Some(stat) = new_stat {
        ingest::save_stat_cache(&ctx.cache, &stat)?;
    }
    let seconds = ingest_started.elapsed().as_secs_f64();
    let detail = format!(
        "{} files ({} images or records); {} read, {} decoded{}",
        crate::text::thousands(counts.files as u64),
        crate::text::thousands(counts.units as u64),
        crate::text::thousands(counts.files_read as u64),
        crate::text::thousands(counts.decoded as u64),
        if counts.decoded > 0 {
            format!(
                " ({:.0} images/s)",
                counts.decoded as f64 / seconds.max(1e-9)
            )
        } else {
            String::new()
        }
    );
    ctx.record(ingest::NAME, &freshness, seconds, detail);
    if let Some(last) = ctx.reports.last_mut() {
        last.ingest = Some(counts);
    }
    let ingest_fp = ingest_inputs.fingerprint();

    // sample, statistics, dedup, embed: each reads only ingest
    let sample_inputs = FingerprintInputs::new(sample::NAME, sample::VERSION, &config.sample)
        .with_upstream(ingest::NAME, &ingest_fp);
    let sample_run = |a: &Ingested| sample::run(&a.artifact, &config.sample);
    let sample_art = ctx.run_downstream(&sample_inputs, &sample_run)?;

    let stats_inputs =
        FingerprintInputs::new(statistics::NAME, statistics::VERSION, &config.statistics)
            .with_upstream(ingest::NAME, &ingest_fp);
    let stats_run = |a: &Ingested| statistics::run(a, &config.statistics);
    let stats_art = ctx.run_downstream(&stats_inputs, &stats_run)?;

    let dedup_inputs = FingerprintInputs::new(dedup::NAME, dedup::VERSION, &config.dedup)
        .with_upstream(ingest::NAME, &ingest_fp);
    let progress = ctx.progress;
    let dedup_run = |a: &Ingested| dedup::run(a, &config.dedup, &progress);
    let dedup_art = ctx.run_downstream(&dedup_inputs, &dedup_run)?;

    let embed_inputs = FingerprintInputs::new(embed::NAME, embed::VERSION, &config.embed)
        .with_upstream(ingest::NAME, &ingest_fp);
    // The feature store lives beside the embed artifact and outlives its fingerprint.
    let feature_cache = ctx.cache.clone();
    let embed_run = |a: &Ingested| embed::run(a, &config.embed, &feature_cache);
    let embed_art = ctx.run_downstream(&embed_inputs, &embed_run)?;
    if let Some(art) = &embed_art {
        if let Some(last) = ctx.reports.last_mut() {
            last.embed = Some(art.counts);
        }
        for note in &art.notes {
            ctx.warn(note.clone());
        }
    }

    // render
    let render_started = Instant::now();
    let templates = report::templates(config.report.templates_dir.as_deref())?;
    let dataset_name = dataset_name(&settings.dataset);
    let render_inputs = FingerprintInputs::new(render::NAME, render::VERSION, &config.report)
        .with_upstream(ingest::NAME, &ingest_fp)
        .with_upstream(sample::NAME, &sample_inputs.fingerprint())
        .with_upstream(statistics::NAME, &stats_inputs.fingerprint())
        .with_upstream(dedup::NAME, &dedup_inputs.fingerprint())
        .with_upstream(embed::NAME, &embed_inputs.fingerprint())
        .with_extra("templates", report::templates_digest(&templates))
        .with_extra("dataset name", dataset_name.clone());
    let freshness = ctx.decide(&render_inputs);
    if let Freshness::Stale(_) = &freshness {
        ctx.cache.invalidate(render::NAME)?;
        let sample_art = ctx.materialise(&sample_inputs, sample_art, &sample_run)?;
        let stats_art = ctx.materialise(&stats_inputs, stats_art, &stats_run)?;
        let dedup_art = ctx.materialise(&dedup_inputs, dedup_art, &dedup_run)?;
        let embed_art = ctx.materialise(&embed_inputs, embed_art, &embed_run)?;
        let settings_toml = toml::to_string_pretty(config).unwrap_or_default();
        let stages = ctx.reports.clone();
        let ingested = ctx.ingested()?;
        let input = report::view::RenderInput {
            title: config
                .report
                .title
                .clone()
                .unwrap_or_else(|| dataset_name.clone()),
            dataset_name: dataset_name.clone(),
            ingested,
            sample: &sample_art,
            statistics: &stats_art,
            dedup: &dedup_art,
            embed: &embed_art,
            stages: &stages,
            settings_toml,
        };
        let outputs = render::run(&input, &templates, &settings.out)?;
        ctx.cache.commit(&render_inputs, outputs)?;
    }
    let seconds = render_started.elapsed().as_secs_f64();
    ctx.record(
        render::NAME,
        &freshness,
        seconds,
        format!("{}", settings.out.join(render::HTML).display()),
    );

    let (images, unreadable) = match &ctx.ingested {
        Some(ingested) => (
            ingested.artifact.images.len(),
            ingested
                .artifact
                .rejected
                .iter()
                .filter(|r| r.kind == ingest::RejectKind::Unreadable)
                .count(),
        ),
        None => (counts.units, 0),
    };
    let log = RunLog {
        tool_version: crate::TOOL_VERSION.to_string(),
        stages: ctx.reports,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        warnings: ctx.warnings,
        images,
        unreadable,
    };
    let json = serde_json::to_vec_pretty(&log).context("could not serialise run.json")?;
    fsutil::write_atomic(&settings.out.join("run.json"), &json)?;
    ctx.progress.line(&format!(
        "done in {:.2}s — open {}",
        log.total_seconds,
        settings.out.join(render::HTML).display()
    ));
    Ok(log)
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

/// Decoding limits and thumbnail size from the ingest settings.
fn decode_options(settings: &Settings) -> DecodeOptions {
    DecodeOptions {
        thumbnail_size: settings.file.ingest.thumbnail_size.max(1),
        max_pixels: settings.file.ingest.max_pixels,
    }
}

/// The dataset folder's own name, shown in the report (never the absolute path).
fn dataset_name(root: &Path) -> String {
    let resolved: PathBuf = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".to_string())
}

/// Peak resident set size from /proc (Linux); `None` elsewhere.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
