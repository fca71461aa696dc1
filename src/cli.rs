//! The command line: clap derive, raw flags and their validation only. No I/O happens here;
//! [`crate::config::Settings::resolve`] turns these flags into the run's settings.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::gate::Gate;
use crate::stage::Stage;

/// Become one with your image dataset: one command, one self-contained HTML report.
///
/// aldente reads an image-classification dataset (a folder per class, optionally inside
/// train/val/test folders, or CIFAR-10/100 binary batches) and writes report.html,
/// report.json and summary.md into the output folder. Reruns reuse every stage whose
/// inputs did not change.
#[derive(Debug, Parser)]
#[command(name = "aldente", version, about, long_about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,

    /// Output folder: the report, and the cache that makes reruns fast.
    #[arg(
        long,
        short,
        global = true,
        value_name = "DIR",
        default_value = "output"
    )]
    pub out: PathBuf,

    /// Worker threads for decoding and analysis [default: number of cores].
    #[arg(long, short, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,

    /// Print nothing but errors: no progress bars, no per-stage lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Rerun a stage and everything after it even if its cache is fresh. Without a value,
    /// rerun every stage and decode every image again (ignores the per-file cache).
    /// Give the stage with `=`: `--force=dedup`.
    #[arg(
        long,
        global = true,
        value_name = "STAGE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all"
    )]
    pub force: Option<ForceArg>,

    /// Settings file (TOML). Default: aldente.toml in the current folder, if there is one.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Decode limit: images with more pixels than this are listed as unreadable instead of
    /// being decoded (a memory guard against huge images and decompression bombs).
    /// Overrides ingest.max_pixels [default: 100000000].
    #[arg(long, global = true, value_name = "PIXELS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: Option<u64>,

    /// An ONNX model whose output replaces the built-in image features (embeddings for
    /// label issues, outliers, the map). Overrides embed.model; see README.md, "Your own
    /// model".
    #[arg(long, global = true, value_name = "FILE.onnx")]
    pub model: Option<PathBuf>,

    /// The dataset's layout; by default CIFAR batches, else IDX files, else WebDataset
    /// shards, else a manifest (a .csv or .jsonl file, given or alone at the folder's top
    /// level), else a folder per class.
    /// Overrides dataset.layout.
    #[arg(long, global = true, value_name = "LAYOUT")]
    pub layout: Option<Layout>,

    /// Fail (exit code 3) when a check finds more than its threshold: a comma-separated list
    /// of leakage, conflicting-labels, unreadable, new-duplicates, label-issues (each
    /// `=N`: findings allowed, default 0) and imbalance (`=RATIO`: largest class over
    /// smallest, default statistics.imbalance_ratio). `report` counts the report's findings,
    /// `diff` what the new version introduced. Replaces `[gate] fail_on`.
    #[arg(long, global = true, value_name = "CHECKS", value_parser = parse_gate)]
    pub fail_on: Option<Gate>,
}

/// `--fail-on`'s value, checked without touching the disk.
fn parse_gate(text: &str) -> Result<Gate, String> {
    Gate::parse_list([text])
}

/// The layouts `--layout` (and `dataset.layout`) can force.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// CIFAR batches if present, else IDX files, else WebDataset shards, else a manifest,
    /// else a folder per class.
    #[default]
    Auto,
    /// `<class>/<image>` or `<split>/<class>/<image>`.
    Folder,
    /// CIFAR-10/100 binary batches.
    Cifar,
    /// A CSV or JSON Lines manifest: path, label, optional split.
    Manifest,
    /// MNIST-style IDX files (`*-images-idx3-ubyte[.gz]` with `*-labels-idx1-ubyte[.gz]`).
    Idx,
    /// WebDataset tar shards (`.tar`, `.tar.gz`, `.tgz`).
    Webdataset,
}

/// The value of `--force`: every stage, or one stage and the ones after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceArg {
    All,
    From(Stage),
}

impl ValueEnum for ForceArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ForceArg::All,
            ForceArg::From(Stage::Ingest),
            ForceArg::From(Stage::Sample),
            ForceArg::From(Stage::Statistics),
            ForceArg::From(Stage::Dedup),
            ForceArg::From(Stage::Embed),
            ForceArg::From(Stage::Render),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            ForceArg::All => "all",
            ForceArg::From(stage) => stage.name(),
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse a dataset and write the report into the output folder.
    Report(ReportArgs),
    /// Generate a small synthetic dataset with planted problems (inside the output folder)
    /// and report on it.
    Demo(DemoArgs),
    /// Compare two versions of a dataset (for a pull request): writes diff.html, diff.json
    /// and diff.md into the output folder. Each side is a dataset folder (reported into
    /// OUT/old or OUT/new, with its cache) or the output folder of an earlier report.
    Diff(DiffArgs),
    /// Act on the decisions exported from report.html (decisions.json): move relabelled
    /// files into their class folder, move removed files into a quarantine folder outside
    /// the dataset (never deleted), and record judgements in DATASET/aldente-review.json.
    /// Writes an undo log; `aldente apply --undo DATASET` replays it. Exit code 4 when some
    /// decisions were refused (each with its reason; the rest applied).
    Apply(ApplyArgs),
}

#[derive(Debug, ClapArgs)]
pub struct ApplyArgs {
    /// DECISIONS.json DATASET; with --undo only DATASET.
    #[arg(value_name = "DECISIONS.json DATASET", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Print exactly what would happen, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo the newest apply on DATASET that is not undone yet.
    #[arg(long)]
    pub undo: bool,
    /// Where removed files go [default: DATASET.aldente-quarantine beside the dataset]; must
    /// be outside the dataset. Give the same folder to --undo.
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
}

impl ApplyArgs {
    /// The decisions file (none with `--undo`) and the dataset, once [`parse`] checked them.
    pub fn decisions_and_dataset(&self) -> (Option<&std::path::Path>, &std::path::Path) {
        match self.paths.as_slice() {
            [decisions, dataset] => (Some(decisions), dataset),
            [dataset] => (None, dataset),
            _ => unreachable!("checked by cli::parse"),
        }
    }

    fn check(&self) -> Result<(), String> {
        match (self.undo, self.paths.len()) {
            (true, 1) | (false, 2) => Ok(()),
            (true, _) => Err("`aldente apply --undo` takes only the dataset:                               aldente apply --undo DATASET"
                .into()),
            (false, _) => Err("`aldente apply` takes the decisions file and the dataset:                                aldente apply decisions.json DATASET (or --undo DATASET)"
                .into()),
        }
    }
}

#[derive(Debug, ClapArgs)]
pub struct DiffArgs {
    /// The old version: a dataset folder, or an aldente output folder (report.json, cache/).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The new version: a dataset folder, or an aldente output folder.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
}

#[derive(Debug, ClapArgs)]
pub struct ReportArgs {
    /// The dataset folder (<class>/<image>, <split>/<class>/<image>, CIFAR binary batches, or
    /// one manifest), or a manifest file (.csv or .jsonl: path, label, optional split).
    #[arg(value_name = "DATASET")]
    pub dataset: PathBuf,
}

#[derive(Debug, ClapArgs)]
pub struct DemoArgs {
    /// Seed of the synthetic dataset; the same seed gives the same files.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Parses the process arguments.
pub fn parse() -> Result<Args, clap::Error> {
    checked(Args::try_parse()?)
}

/// The checks clap's derive cannot express.
fn checked(args: Args) -> Result<Args, clap::Error> {
    use clap::CommandFactory;
    if let Command::Apply(apply) = &args.command
        && let Err(message) = apply.check()
    {
        return Err(Args::command().error(clap::error::ErrorKind::WrongNumberOfValues, message));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn force_without_value_means_all() {
        let args = Args::try_parse_from(["aldente", "report", "d", "--force"]).unwrap();
        assert_eq!(args.force, Some(ForceArg::All));
        let args = Args::try_parse_from(["aldente", "report", "d", "--force=dedup"]).unwrap();
        assert_eq!(args.force, Some(ForceArg::From(Stage::Dedup)));
        assert_eq!(
            ForceArg::value_variants().len(),
            Stage::ALL.len() + 1,
            "every stage can be forced"
        );
        assert!(Args::try_parse_from(["aldente", "report", "d", "--force=nope"]).is_err());
    }

    #[test]
    fn max_pixels_must_be_a_positive_number() {
        let args = Args::try_parse_from(["aldente", "report", "d", "--max-pixels", "5"]).unwrap();
        assert_eq!(args.max_pixels, Some(5));
        assert!(Args::try_parse_from(["aldente", "report", "d", "--max-pixels", "0"]).is_err());
    }

    #[test]
    fn fail_on_is_parsed_and_checked_without_io() {
        let args = Args::try_parse_from([
            "aldente",
            "report",
            "d",
            "--fail-on",
            "leakage,imbalance=3.5",
        ])
        .unwrap();
        assert_eq!(args.fail_on.unwrap().describe(), "leakage,imbalance=3.5");
        assert!(Args::try_parse_from(["aldente", "report", "d", "--fail-on", "nope"]).is_err());
        let args = Args::try_parse_from(["aldente", "diff", "a", "b"]).unwrap();
        assert!(matches!(args.command, Command::Diff(_)));
    }

    #[test]
    fn apply_takes_decisions_and_dataset_or_undo_and_dataset() {
        let parse = |list: &[&str]| checked(Args::try_parse_from(list).unwrap());
        let args = parse(&["aldente", "apply", "d.json", "data", "--dry-run"]).unwrap();
        let Command::Apply(apply) = &args.command else {
            panic!("not apply")
        };
        assert!(apply.dry_run);
        assert_eq!(
            apply.decisions_and_dataset().0,
            Some(std::path::Path::new("d.json"))
        );
        assert!(parse(&["aldente", "apply", "--undo", "data"]).is_ok());
        assert!(parse(&["aldente", "apply", "--undo", "d.json", "data"]).is_err());
        assert!(parse(&["aldente", "apply", "data"]).is_err());
    }

    #[test]
    fn zero_jobs_is_rejected() {
        assert!(Args::try_parse_from(["aldente", "demo", "--jobs", "0"]).is_err());
    }
}
