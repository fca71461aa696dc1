//! The caching side of every stage, behind one small trait: [`CachedStage`] says what a stage
//! is called, its logic version, the settings section and upstream stages its fingerprint
//! holds, and how its artifact is saved to and loaded from the cache.
//!
//! This is the only place that knows the file names inside `<out>/cache/<stage>/`. Stages
//! themselves never read or write the cache; what one reuses from an earlier run (ingest's
//! stat cache and previous table, embed's feature store) is loaded here and handed to it.
//! A load error is never fatal to the run: the orchestrator recomputes, with a warning.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Serialize, de::DeserializeOwned};

use crate::cache::statcache::StatCache;
use crate::cache::{Cache, FingerprintInputs};
use crate::config::{
    DedupConfig, EmbedConfig, FileConfig, IngestConfig, ReportConfig, SampleConfig,
    StatisticsConfig,
};
use crate::fsutil;
use crate::progress::Progress;
use crate::runlog::{DedupCounts, StageReport};
use crate::stage::Stage;
use crate::stages::dedup::{self, DedupArtifact};
use crate::stages::embed::onnx::OnnxEmbedder;
use crate::stages::embed::{self, EmbedArtifact, PixelPart, Reference, features::FeatureStore};
use crate::stages::ingest::{self, Ingested};
use crate::stages::render::{self, Rendered};
use crate::stages::sample::{self, SampleArtifact};
use crate::stages::statistics::{self, StatisticsArtifact};
use crate::text::{plural, thousands};

/// Output files written by a save: (name, bytes), recorded in the stage's sidecar so a
/// missing or truncated file is noticed.
pub type Outputs = Vec<(String, u64)>;

/// This run's fingerprint of each stage decided so far.
pub type Fingerprints = BTreeMap<Stage, String>;

/// The caching side of one stage.
pub trait CachedStage {
    const STAGE: Stage;
    /// The stage's logic version (the stage module's `VERSION`).
    const VERSION: u32;
    /// Stages whose artifacts it reads; their fingerprints are part of its own.
    const UPSTREAM: &'static [Stage];
    type Artifact;
    /// The settings section it reads: the only settings in its fingerprint.
    type Config: Serialize;

    fn config(file: &FileConfig) -> &Self::Config;
    fn save(cache: &Cache, artifact: &Self::Artifact) -> Result<Outputs>;
    /// Forgets what the stage would reuse from earlier runs beyond per-file caches (its
    /// pixel-level part), so that `--force` naming it recomputes it from scratch.
    fn forget_reusable(_cache: &Cache) -> Result<()> {
        Ok(())
    }
    /// Adds the work the stage did to its run-log entry (run.json).
    fn log(_artifact: &Self::Artifact, _report: &mut StageReport) {}
    /// Problems that did not stop the stage, for the run's warnings.
    fn warnings(_artifact: &Self::Artifact) -> Vec<String> {
        Vec::new()
    }
    /// What the stage line says after a run that computed the artifact ("pairs reused; ...").
    fn detail(_artifact: &Self::Artifact) -> String {
        String::new()
    }
    fn load(cache: &Cache) -> Result<Self::Artifact>;

    /// Name, version, settings section and upstream fingerprints. Ingest adds its files;
    /// render its templates.
    fn inputs(file: &FileConfig, upstream: &Fingerprints) -> FingerprintInputs {
        Self::UPSTREAM.iter().fold(
            FingerprintInputs::new(Self::STAGE, Self::VERSION, Self::config(file)),
            |inputs, stage| {
                let fingerprint = upstream.get(stage).map(String::as_str).unwrap_or("");
                inputs.with_upstream(*stage, fingerprint)
            },
        )
    }
}

/// The one artifact file of the stages that keep a single serialised value.
const ARTIFACT: &str = "artifact.bin";

fn save_value<T: Serialize>(cache: &Cache, stage: Stage, value: &T) -> Result<Outputs> {
    let size = cache.write_artifact(stage, ARTIFACT, value)?;
    Ok(vec![(ARTIFACT.into(), size)])
}

fn load_value<T: DeserializeOwned>(cache: &Cache, stage: Stage) -> Result<T> {
    cache.read_artifact(stage, ARTIFACT)
}

pub struct IngestStage;
pub struct SampleStage;
pub struct StatisticsStage;
pub struct DedupStage;
pub struct EmbedStage;
pub struct RenderStage;

const TABLE: &str = "table.bin";
const THUMBS: &str = "thumbs.bin";
/// The name carries the stat cache's format: an older aldente's `files.bin` (whose entries
/// held one note and a CIFAR flag per unit) would be misread, so it is not read but removed.
const STAT_CACHE: &str = "files-2.bin";
const OLD_STAT_CACHE: &str = "files.bin";
/// The per-image feature vectors of the built-in features, kept beside the embed artifact
/// and reused across runs whatever the embed fingerprint says (they depend on pixels only).
/// A model's vectors go to a file of their own ([`feature_store_file`]), so switching models
/// back and forth keeps both.
const FEATURE_STORE: &str = "features.bin";

/// The store file of a feature source, by its id.
fn feature_store_file(embedder: &str) -> String {
    if embedder.starts_with("builtin") {
        FEATURE_STORE.to_string()
    } else {
        format!(
            "features-{:016x}.bin",
            xxhash_rust::xxh3::xxh3_64(embedder.as_bytes())
        )
    }
}
/// Embed's pixel-level part (vectors, neighbours, map), reused while the pictures are the
/// same; see [`embed::PixelPart`].
const PIXEL_PART: &str = "pixels.bin";
/// Embed's reference for repairs (the last full search's vectors and deep tables); see
/// [`embed::Reference`].
const REFERENCE: &str = "reference.bin";
/// Dedup's pixel-level part (pairs between distinct pictures); see [`dedup::PixelPart`].
const PAIRS: &str = "pairs.bin";

impl CachedStage for IngestStage {
    const STAGE: Stage = ingest::STAGE;
    const VERSION: u32 = ingest::VERSION;
    const UPSTREAM: &'static [Stage] = &[];
    type Artifact = Ingested;
    type Config = IngestConfig;

    fn config(file: &FileConfig) -> &IngestConfig {
        &file.ingest
    }

    /// The thumbnails, streamed from the decoders' buffers (unless they are the stored
    /// file as it is, see [`Ingested::thumbs_file_unchanged`]), then the image table.
    fn save(cache: &Cache, ingested: &Ingested) -> Result<Outputs> {
        let thumbs = if ingested.thumbs_file_unchanged {
            ingested.artifact.thumbs_len
        } else {
            let parts = (0..ingested.artifact.images.len()).map(|i| ingested.thumb_bytes(i));
            cache.write_parts(Self::STAGE, THUMBS, parts)?
        };
        let table = cache.write_artifact(Self::STAGE, TABLE, &ingested.artifact)?;
        Ok(vec![(THUMBS.into(), thumbs), (TABLE.into(), table)])
    }

    /// The table, and the thumbnails checked against the digest stored with it.
    fn load(cache: &Cache) -> Result<Ingested> {
        let artifact: ingest::IngestArtifact = cache.read_artifact(Self::STAGE, TABLE)?;
        let thumbs = cache.read_bytes(Self::STAGE, THUMBS)?;
        if !artifact.matches_thumbs(&thumbs) {
            bail!(
                "cache file {} is damaged (its contents do not match the image table)",
                cache.stage_dir(Self::STAGE).join(THUMBS).display()
            );
        }
        ingest::check_thumb_ranges(&artifact)?;
        Ok(Ingested::new(artifact, thumbs))
    }
}

impl IngestStage {
    /// Whether a previous table exists at all (decides whether a cold scan decodes at once).
    pub fn has_previous(cache: &Cache) -> bool {
        cache.stage_dir(Self::STAGE).join(TABLE).is_file()
    }

    /// The previous stat cache; a missing one means reading every file, and so does a
    /// damaged one, with the warning returned.
    pub fn load_stat_cache(cache: &Cache) -> (StatCache, Option<String>) {
        match cache.read_artifact::<StatCache>(Self::STAGE, STAT_CACHE) {
            Ok(stat) => (stat, None),
            Err(err) => {
                let damaged = cache.stage_dir(Self::STAGE).join(STAT_CACHE).exists();
                let warning = damaged.then(|| format!("{err:#}; every file will be read again"));
                (StatCache::default(), warning)
            }
        }
    }

    pub fn save_stat_cache(cache: &Cache, stat: &StatCache) -> Result<()> {
        // Best effort: a leftover old file costs disk space, nothing else.
        let _ = std::fs::remove_file(cache.stage_dir(Self::STAGE).join(OLD_STAT_CACHE));
        cache
            .write_artifact(Self::STAGE, STAT_CACHE, stat)
            .map(|_| ())
    }
}

impl CachedStage for SampleStage {
    const STAGE: Stage = sample::STAGE;
    const VERSION: u32 = sample::VERSION;
    const UPSTREAM: &'static [Stage] = &[Stage::Ingest];
    type Artifact = SampleArtifact;
    type Config = SampleConfig;

    fn config(file: &FileConfig) -> &SampleConfig {
        &file.sample
    }
    fn save(cache: &Cache, artifact: &SampleArtifact) -> Result<Outputs> {
        save_value(cache, Self::STAGE, artifact)
    }
    fn load(cache: &Cache) -> Result<SampleArtifact> {
        load_value(cache, Self::STAGE)
    }
}

impl CachedStage for StatisticsStage {
    const STAGE: Stage = statistics::STAGE;
    const VERSION: u32 = statistics::VERSION;
    const UPSTREAM: &'static [Stage] = &[Stage::Ingest];
    type Artifact = StatisticsArtifact;
    type Config = StatisticsConfig;

    fn config(file: &FileConfig) -> &StatisticsConfig {
        &file.statistics
    }
    fn save(cache: &Cache, artifact: &StatisticsArtifact) -> Result<Outputs> {
        save_value(cache, Self::STAGE, artifact)
    }
    fn load(cache: &Cache) -> Result<StatisticsArtifact> {
        load_value(cache, Self::STAGE)
    }
}

impl CachedStage for DedupStage {
    const STAGE: Stage = dedup::STAGE;
    const VERSION: u32 = dedup::VERSION;
    const UPSTREAM: &'static [Stage] = &[Stage::Ingest];
    type Artifact = DedupArtifact;
    type Config = DedupConfig;

    fn config(file: &FileConfig) -> &DedupConfig {
        &file.dedup
    }
    fn forget_reusable(cache: &Cache) -> Result<()> {
        fsutil::remove_file_if_exists(&cache.stage_dir(Self::STAGE).join(PAIRS))
    }
    fn log(artifact: &DedupArtifact, report: &mut StageReport) {
        report.dedup = Some(DedupCounts::of(&artifact.search));
    }
    fn detail(artifact: &DedupArtifact) -> String {
        let search = if !artifact.settings.near {
            "near duplicates off".to_string()
        } else if artifact.search.reused {
            "pairs reused (no picture changed)".to_string()
        } else if artifact.search.incremental {
            format!(
                "{} new {} searched, {} {} checked, pairs of {} reused",
                thousands(artifact.search.pictures as u64),
                plural(artifact.search.pictures as u64, "picture", "pictures"),
                thousands(artifact.search.checked as u64),
                plural(artifact.search.checked as u64, "pair", "pairs"),
                thousands(artifact.search.pictures_kept as u64),
            )
        } else {
            format!(
                "{} pictures searched",
                thousands(artifact.search.pictures as u64)
            )
        };
        format!(
            "{search}; {} near {}, {} with conflicting labels",
            thousands(artifact.near_pairs.len() as u64),
            plural(artifact.near_pairs.len() as u64, "pair", "pairs"),
            plural_count(artifact.conflicting_labels.len(), "group", "groups"),
        )
    }
    fn save(cache: &Cache, artifact: &DedupArtifact) -> Result<Outputs> {
        save_value(cache, Self::STAGE, artifact)
    }
    fn load(cache: &Cache) -> Result<DedupArtifact> {
        load_value(cache, Self::STAGE)
    }
}

impl DedupStage {
    /// Runs dedup with the last run's near-duplicate pairs, and keeps the ones it returns.
    /// A damaged file means searching again; a failed write, searching again next time.
    pub fn run_with_pairs(
        cache: &Cache,
        ingested: &Ingested,
        config: &DedupConfig,
        progress: &Progress,
    ) -> DedupArtifact {
        let previous = cache
            .read_artifact::<dedup::PixelPart>(Self::STAGE, PAIRS)
            .ok();
        let deduped = dedup::run(ingested, config, previous, progress);
        if let Some(part) = deduped.pixel {
            // Not fatal: the pairs are recomputed next time.
            let _ = cache.write_artifact(Self::STAGE, PAIRS, &part);
        }
        deduped.artifact
    }
}

impl CachedStage for EmbedStage {
    const STAGE: Stage = embed::STAGE;
    const VERSION: u32 = embed::VERSION;
    const UPSTREAM: &'static [Stage] = &[Stage::Ingest];
    type Artifact = EmbedArtifact;
    type Config = EmbedConfig;

    fn config(file: &FileConfig) -> &EmbedConfig {
        &file.embed
    }
    fn forget_reusable(cache: &Cache) -> Result<()> {
        fsutil::remove_file_if_exists(&cache.stage_dir(Self::STAGE).join(PIXEL_PART))?;
        fsutil::remove_file_if_exists(&cache.stage_dir(Self::STAGE).join(REFERENCE))
    }
    fn log(artifact: &EmbedArtifact, report: &mut StageReport) {
        report.embed = Some(artifact.counts);
    }
    /// The settings, and the model's content: a model file replaced at the same path
    /// reruns the stage.
    fn inputs(file: &FileConfig, upstream: &Fingerprints) -> FingerprintInputs {
        let inputs = FingerprintInputs::new(Self::STAGE, Self::VERSION, &file.embed).with_upstream(
            Stage::Ingest,
            upstream.get(&Stage::Ingest).map_or("", |f| f),
        );
        match &file.embed.model {
            Some(path) => {
                let hash = embed::onnx::file_hash(path)
                    .map(|h| format!("{h:016x}"))
                    .unwrap_or_else(|err| err.to_string());
                inputs.with_extra("model", hash)
            }
            None => inputs,
        }
    }
    fn warnings(artifact: &EmbedArtifact) -> Vec<String> {
        artifact.notes.clone()
    }
    fn detail(artifact: &EmbedArtifact) -> String {
        let counts = &artifact.counts;
        let pixels = if counts.pixel_part_reused {
            "vectors, neighbours and map reused (no picture changed)".to_string()
        } else {
            format!(
                "{} feature vectors computed, {} images searched",
                thousands(counts.features_computed as u64),
                thousands(counts.neighbours_searched as u64)
            )
        };
        format!(
            "{pixels}; {} label-issue candidates",
            thousands(artifact.label_issue_total as u64)
        )
    }
    fn save(cache: &Cache, artifact: &EmbedArtifact) -> Result<Outputs> {
        save_value(cache, Self::STAGE, artifact)
    }
    fn load(cache: &Cache) -> Result<EmbedArtifact> {
        load_value(cache, Self::STAGE)
    }
}

impl EmbedStage {
    /// Runs embed with what earlier runs left (its pixel part, and the feature store when
    /// the pixel part must be redone), and keeps what it returns. Neither a damaged file nor
    /// a failed write stops the stage: each becomes a note.
    pub fn run_with_store(
        cache: &Cache,
        ingested: &Ingested,
        config: &EmbedConfig,
        model: Option<&OnnxEmbedder>,
        progress: &Progress,
    ) -> EmbedArtifact {
        let mut notes = Vec::new();
        let pixel = match cache.read_artifact::<PixelPart>(Self::STAGE, PIXEL_PART) {
            Ok(part) => Some(part),
            Err(err) => {
                if cache.stage_dir(Self::STAGE).join(PIXEL_PART).exists() {
                    notes.push(format!(
                        "{err:#}; vectors, neighbours and map were computed again"
                    ));
                }
                None
            }
        };
        let load_features = |embedder: &str| {
            let name = feature_store_file(embedder);
            match cache.read_artifact::<FeatureStore>(Self::STAGE, &name) {
                Ok(store) => (Some(store), Vec::new()),
                Err(err) => {
                    let damaged = cache.stage_dir(Self::STAGE).join(&name).exists();
                    let note = format!("{err:#}; every feature vector was computed again");
                    (None, if damaged { vec![note] } else { Vec::new() })
                }
            }
        };
        // A damaged reference costs a full search, nothing else: no note.
        let load_reference = || {
            cache
                .read_artifact::<Reference>(Self::STAGE, REFERENCE)
                .ok()
        };
        let embedded = embed::run(
            ingested,
            config,
            embed::Previous {
                pixel,
                features: &load_features,
                reference: &load_reference,
            },
            model,
            progress,
        );
        let mut artifact = embedded.artifact;
        notes.append(&mut artifact.notes);
        artifact.notes = notes;
        let writes = [
            embedded.store.map(|store| {
                let name = feature_store_file(&store.embedder);
                cache.write_artifact(Self::STAGE, &name, &store)
            }),
            embedded
                .pixel
                .map(|part| cache.write_artifact(Self::STAGE, PIXEL_PART, &part)),
            embedded
                .reference
                .map(|reference| cache.write_artifact(Self::STAGE, REFERENCE, &reference)),
        ];
        for err in writes.into_iter().flatten().filter_map(Result::err) {
            artifact.notes.push(format!(
                "{err:#}; this part will be computed again next time"
            ));
        }
        artifact
    }
}

impl CachedStage for RenderStage {
    const STAGE: Stage = render::STAGE;
    const VERSION: u32 = render::VERSION;
    const UPSTREAM: &'static [Stage] = &[
        Stage::Ingest,
        Stage::Sample,
        Stage::Statistics,
        Stage::Dedup,
        Stage::Embed,
    ];
    type Artifact = Rendered;
    type Config = ReportConfig;

    fn config(file: &FileConfig) -> &ReportConfig {
        &file.report
    }

    /// The report files go into the output folder itself (recorded as `out:<name>`, see
    /// [`Cache::freshness`]), one atomic write each.
    fn save(cache: &Cache, rendered: &Rendered) -> Result<Outputs> {
        let mut outputs = Vec::new();
        for (name, bytes) in &rendered.files {
            fsutil::write_atomic(&cache.out_dir().join(name), bytes)?;
            outputs.push((format!("out:{name}"), bytes.len() as u64));
        }
        Ok(outputs)
    }

    fn load(cache: &Cache) -> Result<Rendered> {
        let mut files = Vec::new();
        for name in [render::HTML, render::JSON, render::SUMMARY] {
            files.push((name, fsutil::read(&cache.out_dir().join(name))?));
        }
        let gate = render::gate_of(&files[1].1)?;
        Ok(Rendered { files, gate })
    }
}

/// "3 groups", "1 group".
fn plural_count(n: usize, one: &'static str, many: &'static str) -> String {
    format!("{} {}", thousands(n as u64), plural(n as u64, one, many))
}
