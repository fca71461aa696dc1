//! Typed settings: the optional `aldente.toml` merged with the command-line flags.
//!
//! Each pipeline stage reads only its own section; a stage's fingerprint holds exactly that
//! section, so changing a dedup threshold reruns dedup (and render) and nothing else.
//! Unknown keys are an error that names the key, so a typo never silently does nothing, and
//! every value is checked once, here, after parsing ([`FileConfig::validate`]): a value out of
//! range is refused with its key, its value and the allowed range ([`SettingError`], exit
//! code 2), never clamped. Stages may rely on the ranges documented on each field.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::{Args, Command, ForceArg, Layout};
use crate::gate::Gate;
use crate::stage::Stage;

/// A setting the user can fix: the message names the file or key and what is allowed.
/// `main` gives these exit code 2, like a wrong flag.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{key} = {value} is out of range (allowed: {allowed}){origin}")]
    OutOfRange {
        key: &'static str,
        value: String,
        allowed: &'static str,
        /// " in FILE" when the value came from a settings file.
        origin: String,
    },
    #[error("gate.fail_on: {message}{origin}")]
    Gate { message: String, origin: String },
    #[error(
        "invalid settings file {path} (see `aldente --help` and README.md for the keys): {message}"
    )]
    File { path: PathBuf, message: String },
}

/// Where `--force` starts rerunning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Force {
    None,
    /// Rerun this stage and all later ones.
    From(Stage),
    /// Rerun everything and decode every image again.
    All,
}

/// The contents of `aldente.toml`. Every key has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub dataset: DatasetConfig,
    pub ingest: IngestConfig,
    pub sample: SampleConfig,
    pub statistics: StatisticsConfig,
    pub dedup: DedupConfig,
    pub embed: EmbedConfig,
    pub report: ReportConfig,
    pub gate: GateConfig,
}

/// `[gate]`: the checks `report` and `diff` fail on (see [`crate::gate`]); `--fail-on`
/// replaces them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Checks in `--fail-on`'s syntax, one per item or comma-separated:
    /// `["leakage", "imbalance=3.0"]`.
    pub fail_on: Vec<String>,
}

/// How the dataset is laid out, and a manifest's column names. Read by discovery only: what
/// it changes (paths, labels, splits) enters the ingest fingerprint through the units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    /// `auto` (CIFAR batches, else IDX files, else WebDataset shards, else a manifest, else
    /// folders), or one layout forced.
    pub layout: Layout,
    /// A manifest's path column, when it is not one of the usual names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_column: Option<String>,
    /// A manifest's label column, when it is not one of the usual names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// A manifest's split column, when it is not one of the usual names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_column: Option<String>,
    /// The field of a WebDataset sample's `.json` that holds its label, when it is not
    /// `label`, `class` or `cls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_field: Option<String>,
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
    /// Most images on the t-SNE map; larger datasets map a seeded random sample of
    /// this size, chosen by pixels so that a relabel keeps the map.
    pub map_points: usize,
    /// Label-issue candidates kept (report.json lists them all, the page the first ones).
    pub label_issues: usize,
    /// Outliers kept.
    pub outliers: usize,
    /// An ONNX model whose output replaces the built-in features (`--model`): a classifier
    /// of your own, or a general image encoder. Its input size and layout are read from it.
    pub model: Option<PathBuf>,
    /// How pixels are scaled for the model: "0..1" (x/255), "imagenet" (x/255 minus
    /// ImageNet's mean, over its standard deviation, per channel) or "0..255".
    pub model_pixels: ModelPixels,
    /// The model output to use, by name, when it has several.
    pub model_output: Option<String>,
    /// Height and width to feed a model that leaves its input size open.
    pub model_input_size: Option<u32>,
    /// The model's output is its class scores (logits or probabilities) for the dataset's
    /// classes, in the order of the class names (sorted, as torchvision's ImageFolder has
    /// them; a CIFAR binary dataset's names-file order). Its probabilities then stand in for
    /// the out-of-fold linear model as the label issues' model witness.
    pub model_is_classifier: bool,
    /// What runs the model: "tract" (built in, pure Rust) or "onnxruntime" (faster; needs
    /// aldente built with `--features onnxruntime` and a libonnxruntime, see
    /// `onnxruntime_library`).
    pub model_runtime: ModelRuntime,
    /// The libonnxruntime shared library for `model_runtime = "onnxruntime"`; default: the
    /// ORT_DYLIB_PATH environment variable.
    pub onnxruntime_library: Option<PathBuf>,
}

/// What runs a model (`embed.model_runtime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRuntime {
    #[default]
    Tract,
    Onnxruntime,
}

impl ModelRuntime {
    pub fn name(self) -> &'static str {
        match self {
            ModelRuntime::Tract => "tract",
            ModelRuntime::Onnxruntime => "onnxruntime",
        }
    }
}

/// How pixels are scaled for a model (`embed.model_pixels`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelPixels {
    #[default]
    #[serde(rename = "0..1")]
    Unit,
    #[serde(rename = "imagenet")]
    Imagenet,
    #[serde(rename = "0..255")]
    Raw,
}

impl ModelPixels {
    pub fn name(self) -> &'static str {
        match self {
            ModelPixels::Unit => "0..1",
            ModelPixels::Imagenet => "imagenet",
            ModelPixels::Raw => "0..255",
        }
    }
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
            model: None,
            model_pixels: ModelPixels::Unit,
            model_output: None,
            model_input_size: None,
            model_is_classifier: false,
            model_runtime: ModelRuntime::Tract,
            onnxruntime_library: None,
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
    /// The checks the run fails on: `--fail-on`, else `[gate] fail_on`.
    pub gate: Gate,
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
        if let Some(model) = &args.model {
            file.embed.model = Some(model.clone());
        }
        if let Some(layout) = args.layout {
            file.dataset.layout = layout;
        }
        let dataset = match &args.command {
            Command::Report(report) => report.dataset.clone(),
            Command::Demo(_) => args.out.join("demo-dataset"),
            Command::Diff(diff) => diff.new.clone(),
            Command::Apply(apply) => apply.decisions_and_dataset().1.to_path_buf(),
        };
        let origin = config_path
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        file.validate(&origin)?;
        let gate = match &args.fail_on {
            Some(gate) => gate.clone(),
            None => Gate::parse_list(file.gate.fail_on.iter().map(String::as_str)).map_err(
                |message| SettingError::Gate {
                    message,
                    origin: origin.clone(),
                },
            )?,
        };
        let force = match args.force {
            None => Force::None,
            Some(ForceArg::All) => Force::All,
            Some(ForceArg::From(stage)) => Force::From(stage),
        };
        Ok(Settings {
            dataset,
            out: args.out.clone(),
            jobs: args.jobs.map(usize::from),
            quiet: args.quiet,
            force,
            file,
            config_path,
            gate,
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
            gate: Gate::default(),
        }
    }
}

/// Reads a TOML settings file; errors name the file and the bad key.
pub fn load_config(path: &Path) -> Result<FileConfig> {
    let text = crate::fsutil::read_to_string(path)?;
    toml::from_str(&text).map_err(|err| {
        SettingError::File {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
        .into()
    })
}

impl FileConfig {
    /// Refuses any value outside its range; `origin` (" in FILE", or empty) ends the message.
    pub fn validate(&self, origin: &str) -> Result<(), SettingError> {
        let out_of_range =
            |key: &'static str, value: String, allowed: &'static str| SettingError::OutOfRange {
                key,
                value,
                allowed,
                origin: origin.to_string(),
            };
        let whole = |key, value: u64, low: u64, high: u64, allowed| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(out_of_range(key, value.to_string(), allowed))
            }
        };
        let real = |key, value: f64, low: f64, high: f64, allowed| {
            if value.is_finite() && (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(out_of_range(key, value.to_string(), allowed))
            }
        };
        let (i, st, d, e) = (&self.ingest, &self.statistics, &self.dedup, &self.embed);
        whole(
            "ingest.thumbnail_size",
            i.thumbnail_size.into(),
            1,
            4096,
            "1 to 4096",
        )?;
        whole("ingest.max_pixels", i.max_pixels, 1, u64::MAX, "1 or more")?;
        whole(
            "sample.per_class",
            self.sample.per_class as u64,
            0,
            10_000,
            "0 to 10000",
        )?;
        real(
            "statistics.imbalance_ratio",
            st.imbalance_ratio,
            1.0,
            f64::MAX,
            "1.0 or more",
        )?;
        whole(
            "statistics.extremes",
            st.extremes as u64,
            0,
            1_000,
            "0 to 1000",
        )?;
        real(
            "dedup.near_threshold",
            d.near_threshold,
            0.0,
            1.0,
            "0.0 to 1.0",
        )?;
        real(
            "dedup.possible_threshold",
            d.possible_threshold,
            0.0,
            1.0,
            "0.0 to 1.0",
        )?;
        whole(
            "dedup.max_shift",
            d.max_shift.into(),
            0,
            MAX_SHIFT,
            "0 to 8",
        )?;
        whole("dedup.candidates", d.candidates as u64, 1, 100, "1 to 100")?;
        whole("embed.components", e.components as u64, 2, 256, "2 to 256")?;
        whole("embed.neighbours", e.neighbours as u64, 1, 100, "1 to 100")?;
        whole(
            "embed.map_points",
            e.map_points as u64,
            0,
            1_000_000,
            "0 to 1000000",
        )?;
        whole(
            "embed.label_issues",
            e.label_issues as u64,
            0,
            100_000,
            "0 to 100000",
        )?;
        whole(
            "embed.outliers",
            e.outliers as u64,
            0,
            100_000,
            "0 to 100000",
        )?;
        if let Some(size) = e.model_input_size {
            whole("embed.model_input_size", size.into(), 1, 4096, "1 to 4096")?;
        }
        Ok(())
    }
}

/// The largest `dedup.max_shift`: shifts are tried on a 32x32 version of each picture.
const MAX_SHIFT: u64 = 8;

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
    fn defaults_are_valid_and_out_of_range_values_name_key_value_and_range() {
        FileConfig::default().validate("").unwrap();
        let mut config = FileConfig::default();
        config.embed.components = 1;
        let err = config.validate(" in a.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "embed.components = 1 is out of range (allowed: 2 to 256) in a.toml"
        );
        let mut config = FileConfig::default();
        config.dedup.near_threshold = f64::NAN;
        let err = config.validate("").unwrap_err().to_string();
        assert!(err.starts_with("dedup.near_threshold = NaN"), "{err}");
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let config: FileConfig = toml::from_str("[sample]\nper_class = 8\n").unwrap();
        assert_eq!(config.sample.per_class, 8);
        assert_eq!(config.sample.seed, SampleConfig::default().seed);
        assert_eq!(config.ingest, IngestConfig::default());
    }
}
