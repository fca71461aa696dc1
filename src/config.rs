//! Typed settings: the optional `aldente.toml` merged with the command-line flags.
//!
//! Each pipeline stage reads only its own section; a stage's fingerprint holds exactly that
//! section, so changing a dedup threshold reruns dedup (and render) and nothing else.
//! Unknown keys are an error that names the key, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::{Args, Command};

/// Where `--force` starts rerunning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Force {
    None,
    /// Rerun this stage and all later ones.
    From(String),
    /// Rerun everything and decode every image again.
    All,
}

/// The contents of `aldente.toml`. Every key has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub ingest: IngestConfig,
    pub sample: SampleConfig,
    pub statistics: StatisticsConfig,
    pub dedup: DedupConfig,
    pub embed: EmbedConfig,
    pub report: ReportConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Longest side of the thumbnail kept per image for later stages, in pixels.
    pub thumbnail_size: u32,
    /// Images with more pixels than this are not decoded (memory guard); they are listed
    /// as unreadable with the limit named.
    pub max_pixels: u64,
    /// Follow symbolic links inside the dataset (loops are detected and listed).
    pub follow_symlinks: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            thumbnail_size: 64,
            max_pixels: 100_000_000,
            follow_symlinks: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleConfig {
    /// Images shown per class in the sample grids.
    pub per_class: usize,
    /// Seed of the sample choice; the same seed shows the same images.
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            per_class: 48,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatisticsConfig {
    /// Alert when the largest class has this many times more images than the smallest.
    pub imbalance_ratio: f64,
    /// Images shown per extreme (darkest, brightest, ...).
    pub extremes: usize,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        StatisticsConfig {
            imbalance_ratio: 3.0,
            extremes: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Report exact duplicates (same bytes or same decoded pixels).
    pub exact: bool,
    /// Look for near duplicates (re-encoded, resized, shifted, colour-shifted copies).
    pub near: bool,
    /// Largest distance (0 = same picture; see `dedup::near::align`) at which two pictures
    /// count as copies: the confident tier, which forms groups and counts as leakage.
    pub near_threshold: f64,
    /// Largest distance at which a pair is still listed, as a possible copy to review.
    pub possible_threshold: f64,
    /// Largest shift, in pixels of a 32x32 version of the picture, the check tries.
    pub max_shift: u32,
    /// Also look for mirror images (horizontal flips), reported as such.
    pub mirrored: bool,
    /// Candidates per picture (and per mirror image) that the careful check looks at.
    pub candidates: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact: true,
            near: true,
            near_threshold: 0.11,
            possible_threshold: 0.16,
            max_shift: 3,
            mirrored: true,
            candidates: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Seed for everything random in the embedding (PCA fit, folds, map sample).
    pub seed: u64,
    /// PCA components the features are reduced to. More is slightly more accurate and
    /// proportionally slower (neighbour search cost grows with it).
    pub components: usize,
    /// Nearest neighbours per image, for label issues, outliers and class confusion.
    pub neighbours: usize,
    /// Most images on the t-SNE map; larger datasets map a stratified sample of this size.
    pub map_points: usize,
    /// Label-issue candidates kept (report.json lists them all, the page the first ones).
    pub label_issues: usize,
    /// Outliers kept.
    pub outliers: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            seed: 0,
            components: 96,
            neighbours: 20,
            map_points: 10_000,
            label_issues: 500,
            outliers: 50,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// Title shown at the top of the report; default: the dataset folder's name.
    pub title: Option<String>,
    /// A folder of templates that replace the built-in ones file by file.
    pub templates_dir: Option<PathBuf>,
}

/// Everything a run needs, resolved once from flags and the config file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The dataset root; for `demo`, filled in once the demo data exists.
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub jobs: Option<usize>,
    pub quiet: bool,
    pub force: Force,
    pub file: FileConfig,
    /// Where the settings file came from, for "How it was made".
    pub config_path: Option<PathBuf>,
}

impl Settings {
    /// Reads the config file (if any) and merges the flags over it.
    pub fn resolve(args: &Args) -> Result<Settings> {
        let (mut file, config_path) = match &args.config {
            Some(path) => (load_config(path)?, Some(path.clone())),
            None => {
                let default = PathBuf::from("aldente.toml");
                if default.is_file() {
                    (load_config(&default)?, Some(default))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        // Flags override the settings file.
        if let Some(max_pixels) = args.max_pixels {
            file.ingest.max_pixels = max_pixels;
        }
        let dataset = match &args.command {
            Command::Report(report) => report.dataset.clone(),
            Command::Demo(_) => args.out.join("demo-dataset"),
        };
        let force = match args.force.as_deref() {
            None => Force::None,
            Some("all") => Force::All,
            Some(stage) => Force::From(stage.to_string()),
        };
        Ok(Settings {
            dataset,
            out: args.out.clone(),
            jobs: args.jobs.map(usize::from),
            quiet: args.quiet,
            force,
            file,
            config_path,
        })
    }

    /// Settings for programmatic use (tests, benchmarks): defaults everywhere.
    pub fn for_paths(dataset: &Path, out: &Path) -> Settings {
        Settings {
            dataset: dataset.to_path_buf(),
            out: out.to_path_buf(),
            jobs: None,
            quiet: true,
            force: Force::None,
            file: FileConfig::default(),
            config_path: None,
        }
    }
}

/// Reads and validates a TOML settings file; errors name the file and the bad key.
pub fn load_config(path: &Path) -> Result<FileConfig> {
    let text = crate::fsutil::read_to_string(path)?;
    toml::from_str(&text).with_context(|| {
        format!(
            "invalid settings file {} (see `aldente --help` and README.md for the keys)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let config: FileConfig = toml::from_str("").unwrap();
        assert_eq!(config, FileConfig::default());
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = toml::from_str::<FileConfig>("[ingest]\nthumbnail_sise = 3\n").unwrap_err();
        assert!(err.to_string().contains("thumbnail_sise"), "{err}");
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let config: FileConfig = toml::from_str("[sample]\nper_class = 8\n").unwrap();
        assert_eq!(config.sample.per_class, 8);
        assert_eq!(config.sample.seed, SampleConfig::default().seed);
        assert_eq!(config.ingest, IngestConfig::default());
    }
}
