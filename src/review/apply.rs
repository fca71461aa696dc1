//! `aldente apply`: carry out the decisions of decisions.json on a dataset, safely.
//!
//! Two steps. [`plan`] looks at every decision and the disk without changing anything: each
//! becomes a planned move, a judgement for the review file, or a [`Refusal`] with its reason
//! (worded in one place, [`Refusal::describe`]). [`execute`] then carries out the plan;
//! `--dry-run` prints the plan and stops. A refused decision never stops the others.
//!
//! - relabel: `<split>/<class>/<rest>` → `<split>/<to>/<rest>` inside the dataset (the split
//!   folder is kept; without split folders `<class>/<rest>` → `<to>/<rest>`);
//! - remove: `<rel>` → `<quarantine>/apply-NNNN/<rel>`, where the quarantine is
//!   `<dataset>.aldente-quarantine` beside the dataset (or `--quarantine DIR`, which must lie
//!   outside it). Nothing is ever deleted.
//!
//! Every apply that moves files writes `apply-NNNN/undo.json` before the first move and again
//! after the last; [`undo`] replays the newest log not yet undone, in reverse, deciding per
//! move from the disk (so a log of an apply killed half-way still undoes what was done), and
//! refusing a move back whose destination exists again or whose file changed since.
//!
//! Never: touch a path that is absolute, has a `..` component, or leads outside the dataset
//! through a symbolic link (the file's or a folder's, at the source or the destination);
//! overwrite a file; act on a file whose bytes differ from the ones the report saw.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use super::decisions::{Decision, DecisionsFile};
use super::reviewfile::{self, ReviewFile};
use super::{hash_hex, parse_hash};
use crate::cli::Layout as LayoutSetting;
use crate::config::DatasetConfig;
use crate::fsutil;

/// The undo log in each `apply-NNNN` folder.
pub const UNDO_LOG: &str = "undo.json";
const UNDO_FORMAT: &str = "aldente-undo";
const UNDO_VERSION: u32 = 1;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print what would happen; change nothing.
    pub dry_run: bool,
    /// `--quarantine DIR`; default `<dataset>.aldente-quarantine` beside the dataset.
    pub quarantine: Option<PathBuf>,
}

/// A mistake in how `apply` was called that the user fixes (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "--quarantine {given}: that folder is inside the dataset {dataset}; removed files must \
         leave the dataset: give a folder outside it (by default they go to {default})"
    )]
    QuarantineInside {
        given: PathBuf,
        dataset: PathBuf,
        default: PathBuf,
    },
    #[error("the dataset {0} is not a folder (give the dataset's root folder, or its manifest)")]
    NotADataset(PathBuf),
}

/// Why a decision is not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    EmptyPath,
    AbsolutePath,
    ParentComponent,
    /// The path (the file, or a folder on the way) leads outside the dataset through a
    /// symbolic link.
    OutsideDataset,
    /// The class folder named by a relabel ends outside the dataset through a symbolic link.
    DestinationOutside(String),
    BadClass(String),
    SameClass(String),
    NotInClassFolder,
    Missing,
    NotAFile,
    Changed,
    BadHash(String),
    /// The destination exists already (or another decision moves a file there).
    Clash(String),
    /// Another decision in the same file already moves this file.
    AlreadyDecided,
    /// A CIFAR record: one of 10,000 images inside one batch file.
    CifarRecord,
    /// A manifest dataset (its file name): labels and membership are rows, not folders.
    Manifest(String),
    /// The move itself failed (permissions, a full disk): the OS's message.
    Io(String),
}

impl Refusal {
    /// The reason, worded for people, with what to do where there is something to do.
    pub fn describe(&self) -> String {
        match self {
            Refusal::EmptyPath => "the path is empty".into(),
            Refusal::AbsolutePath => {
                "the path is absolute: decisions name files relative to the dataset root".into()
            }
            Refusal::ParentComponent => {
                "the path has a `..` component, which could lead out of the dataset".into()
            }
            Refusal::OutsideDataset => {
                "a symbolic link on the path leads outside the dataset".into()
            }
            Refusal::DestinationOutside(dest) => format!(
                "the destination `{dest}` leads outside the dataset through a symbolic link"
            ),
            Refusal::BadClass(class) => format!(
                "`{class}` is not a usable class folder name (empty, hidden, `..`, or holding `/`)"
            ),
            Refusal::SameClass(class) => format!("the file is already in class `{class}`"),
            Refusal::NotInClassFolder => {
                "the file is not inside a class folder, so it has no label to change".into()
            }
            Refusal::Missing => {
                "the file is not there any more (moved or deleted since the report): \
                 run the report again"
                    .into()
            }
            Refusal::NotAFile => "the path is a folder, not a file".into(),
            Refusal::Changed => "the file changed since the report (its content hash differs): \
                 run the report again and decide on the new file"
                .into(),
            Refusal::BadHash(hash) => {
                format!("`{hash}` is not a content hash (32 hex digits, as in report.json)")
            }
            Refusal::Clash(dest) => {
                format!("`{dest}` exists already; nothing is overwritten: rename one of the two")
            }
            Refusal::AlreadyDecided => "an earlier decision already moves this file".into(),
            Refusal::CifarRecord => {
                "a CIFAR record is one image inside a batch file, which cannot be moved alone; \
                 relabel or drop it in your own loader"
                    .into()
            }
            Refusal::Manifest(file) => format!(
                "the dataset is the manifest `{file}`: edit the label (or delete the row) there"
            ),
            Refusal::Io(message) => format!("the move failed: {message}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Where a planned move puts the file: inside the dataset or inside this apply's quarantine
/// folder, relative to that root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Root {
    Dataset,
    Quarantine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveKind {
    Relabel { from: String, to: String },
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub from: String,
    pub to: String,
    pub to_root: Root,
    pub kind: MoveKind,
    pub content_hash: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    NotDuplicate {
        hashes: (u128, u128),
        paths: [String; 2],
    },
    LabelCorrect {
        hash: u128,
        label: String,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: String,
    pub action: &'static str,
    pub reason: Refusal,
}

/// What an apply will do (or, after [`execute`], did).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The dataset root, resolved (symbolic links followed).
    pub root: PathBuf,
    /// This apply's quarantine folder, `<quarantine>/apply-NNNN`.
    pub apply_dir: PathBuf,
    pub moves: Vec<PlannedMove>,
    pub judgements: Vec<Judgement>,
    pub refused: Vec<Refused>,
}

/// How the dataset holds its labels, as far as moving files goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    Folder { has_splits: bool },
    Cifar,
    Manifest(String),
}

/// The dataset root folder (a manifest given as a file: its folder) and its layout.
fn root_and_layout(dataset: &Path, config: &DatasetConfig) -> Result<(PathBuf, Layout)> {
    let forced = config.layout;
    if dataset.is_file() {
        let name = dataset
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = dataset.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        return Ok((canonical(parent)?, Layout::Manifest(name)));
    }
    if !dataset.is_dir() {
        return Err(ApplyError::NotADataset(dataset.to_path_buf()).into());
    }
    let root = canonical(dataset)?;
    if matches!(forced, LayoutSetting::Auto | LayoutSetting::Cifar)
        && crate::dataset::cifar::discover(&root)?.is_some()
    {
        return Ok((root, Layout::Cifar));
    }
    if matches!(forced, LayoutSetting::Auto | LayoutSetting::Manifest)
        && let Some(file) =
            crate::dataset::manifest::find(&root, config, forced == LayoutSetting::Manifest)?
    {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok((root, Layout::Manifest(name)));
    }
    let has_splits = crate::dataset::folder::has_split_folders(&root)?;
    Ok((root, Layout::Folder { has_splits }))
}

fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("could not resolve {}", path.display()))
}

/// A path that may not exist yet, resolved through its nearest existing ancestor.
fn resolve_lenient(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            let mut out = resolved;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The quarantine root: `--quarantine DIR` (refused inside the dataset) or the default beside
/// the dataset.
fn quarantine_root(root: &Path, given: Option<&Path>) -> Result<PathBuf> {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let default = root
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!("{name}.aldente-quarantine"));
    let Some(given) = given else {
        return Ok(default);
    };
    let absolute = if given.is_absolute() {
        given.to_path_buf()
    } else {
        std::env::current_dir()
            .context("could not read the current folder")?
            .join(given)
    };
    let resolved = resolve_lenient(&absolute);
    if resolved.starts_with(root) {
        return Err(ApplyError::QuarantineInside {
            given: given.to_path_buf(),
            dataset: root.to_path_buf(),
            default,
        }
        .into());
    }
    Ok(resolved)
}

/// `apply-NNNN` folders in the quarantine, by number.
fn apply_dirs(quarantine: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(quarantine)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name.strip_prefix("apply-")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Checks a decision's path and finds the file: its absolute path inside the dataset.
fn locate(root: &Path, rel: &str) -> Result<PathBuf, Refusal> {
    if rel.is_empty() {
        return Err(Refusal::EmptyPath);
    }
    if rel.starts_with('/') || rel.starts_with('\\') || Path::new(rel).is_absolute() {
        return Err(Refusal::AbsolutePath);
    }
    let mut parts = rel.split(['/', '\\']);
    if parts.any(|part| part == "..") {
        return Err(Refusal::ParentComponent);
    }
    let path = root.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(_) => {
            // A dangling path could still be a link chain out; both mean "not there".
            return Err(Refusal::Missing);
        }
    };
    match path.canonicalize() {
        Ok(resolved) if resolved.starts_with(root) => {}
        Ok(_) => return Err(Refusal::OutsideDataset),
        Err(_) => return Err(Refusal::Missing),
    }
    // The parent folders too: a link to a folder outside moves a file of another tree.
    if let Some(parent) = path.parent()
        && !parent.canonicalize().is_ok_and(|p| p.starts_with(root))
    {
        return Err(Refusal::OutsideDataset);
    }
    if meta.is_dir() {
        return Err(Refusal::NotAFile);
    }
    Ok(path)
}

fn check_hash(path: &Path, expected: &str) -> Result<u128, Refusal> {
    let wanted = parse_hash(expected).ok_or_else(|| Refusal::BadHash(expected.to_string()))?;
    let bytes = std::fs::read(path).map_err(|err| Refusal::Io(err.to_string()))?;
    if xxh3_128(&bytes) != wanted {
        return Err(Refusal::Changed);
    }
    Ok(wanted)
}

fn valid_class(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.trim() == name
}

/// Whether `dest` (inside the dataset, maybe not existing yet) stays inside once resolved.
fn stays_inside(root: &Path, dest: &Path) -> bool {
    dest.parent()
        .is_some_and(|parent| resolve_lenient(parent).starts_with(root))
}

/// Looks at every decision; changes nothing.
pub fn plan(
    decisions: &DecisionsFile,
    dataset: &Path,
    config: &DatasetConfig,
    options: &Options,
) -> Result<Plan> {
    let (root, layout) = root_and_layout(dataset, config)?;
    let quarantine = quarantine_root(&root, options.quarantine.as_deref())?;
    let next = apply_dirs(&quarantine).last().map_or(1, |(n, _)| n + 1);
    let apply_dir = quarantine.join(format!("apply-{next:04}"));
    let mut plan = Plan {
        root: root.clone(),
        apply_dir,
        moves: Vec::new(),
        judgements: Vec::new(),
        refused: Vec::new(),
    };
    let mut sources: HashSet<String> = HashSet::new();
    let mut destinations: HashSet<String> = HashSet::new();
    for decision in &decisions.decisions {
        let action = match decision {
            Decision::Relabel { .. } => "relabel",
            Decision::Remove { .. } => "remove",
            Decision::NotDuplicate { .. } => "not a duplicate",
            Decision::LabelCorrect { .. } => "label correct",
        };
        let refuse = |plan: &mut Plan, path: &str, reason: Refusal| {
            plan.refused.push(Refused {
                path: path.to_string(),
                action,
                reason,
            })
        };
        match decision {
            Decision::NotDuplicate {
                paths,
                content_hashes,
            } => match (
                parse_hash(&content_hashes[0]),
                parse_hash(&content_hashes[1]),
            ) {
                (Some(a), Some(b)) => plan.judgements.push(Judgement::NotDuplicate {
                    hashes: (a, b),
                    paths: paths.clone(),
                }),
                (None, _) => refuse(
                    &mut plan,
                    &paths[0],
                    Refusal::BadHash(content_hashes[0].clone()),
                ),
                (_, None) => refuse(
                    &mut plan,
                    &paths[1],
                    Refusal::BadHash(content_hashes[1].clone()),
                ),
            },
            Decision::LabelCorrect {
                path,
                content_hash,
                label,
            } => match parse_hash(content_hash) {
                Some(hash) => plan.judgements.push(Judgement::LabelCorrect {
                    hash,
                    label: label.clone(),
                    path: path.clone(),
                }),
                None => refuse(&mut plan, path, Refusal::BadHash(content_hash.clone())),
            },
            Decision::Relabel {
                path,
                content_hash,
                to,
            } => match plan_relabel(&root, &layout, path, content_hash, to) {
                Ok(planned) => {
                    if !sources.insert(planned.from.clone()) {
                        refuse(&mut plan, path, Refusal::AlreadyDecided);
                    } else if !destinations.insert(planned.to.clone()) {
                        refuse(&mut plan, path, Refusal::Clash(planned.to.clone()));
                    } else {
                        plan.moves.push(planned);
                    }
                }
                Err(reason) => refuse(&mut plan, path, reason),
            },
            Decision::Remove { path, content_hash } => {
                match plan_remove(&root, &layout, path, content_hash) {
                    Ok(planned) => {
                        if sources.insert(planned.from.clone()) {
                            plan.moves.push(planned);
                        } else {
                            refuse(&mut plan, path, Refusal::AlreadyDecided);
                        }
                    }
                    Err(reason) => refuse(&mut plan, path, reason),
                }
            }
        }
    }
    Ok(plan)
}

/// The checks every move shares: the path, the layout, the file, its bytes.
fn movable(
    root: &Path,
    layout: &Layout,
    rel: &str,
    content_hash: &str,
) -> Result<(PathBuf, u128), Refusal> {
    match layout {
        Layout::Cifar => return Err(Refusal::CifarRecord),
        Layout::Manifest(file) => return Err(Refusal::Manifest(file.clone())),
        Layout::Folder { .. } => {}
    }
    let path = locate(root, rel)?;
    let hash = check_hash(&path, content_hash)?;
    Ok((path, hash))
}

fn plan_relabel(
    root: &Path,
    layout: &Layout,
    rel: &str,
    content_hash: &str,
    to: &str,
) -> Result<PlannedMove, Refusal> {
    if !valid_class(to) {
        return Err(Refusal::BadClass(to.to_string()));
    }
    let (_, hash) = movable(root, layout, rel, content_hash)?;
    let has_splits = matches!(layout, Layout::Folder { has_splits: true });
    let parts: Vec<&str> = rel.split('/').collect();
    let class_at = usize::from(has_splits);
    if parts.len() < class_at + 2 {
        return Err(Refusal::NotInClassFolder);
    }
    let from_class = parts[class_at].to_string();
    if from_class == to {
        return Err(Refusal::SameClass(from_class));
    }
    let mut dest_parts = parts.clone();
    dest_parts[class_at] = to;
    let dest = dest_parts.join("/");
    let dest_path = root.join(&dest);
    if std::fs::symlink_metadata(&dest_path).is_ok() {
        return Err(Refusal::Clash(dest));
    }
    if !stays_inside(root, &dest_path) {
        return Err(Refusal::DestinationOutside(dest));
    }
    Ok(PlannedMove {
        from: rel.to_string(),
        to: dest,
        to_root: Root::Dataset,
        kind: MoveKind::Relabel {
            from: from_class,
            to: to.to_string(),
        },
        content_hash: hash,
    })
}

fn plan_remove(
    root: &Path,
    layout: &Layout,
    rel: &str,
    content_hash: &str,
) -> Result<PlannedMove, Refusal> {
    let (_, hash) = movable(root, layout, rel, content_hash)?;
    Ok(PlannedMove {
        from: rel.to_string(),
        to: rel.to_string(),
        to_root: Root::Quarantine,
        kind: MoveKind::Remove,
        content_hash: hash,
    })
}

impl Plan {
    fn target(&self, root: &Root, rel: &str) -> PathBuf {
        match root {
            Root::Dataset => self.root.join(rel),
            Root::Quarantine => self.apply_dir.join(rel),
        }
    }

    /// The plan, one line per decision, for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for m in &self.moves {
            lines.push(match &m.kind {
                MoveKind::Relabel { from, to } => {
                    format!("relabel {} → {} ({from} → {to})", m.from, m.to)
                }
                MoveKind::Remove => format!(
                    "remove  {} → {} (quarantine)",
                    m.from,
                    self.target(&m.to_root, &m.to).display()
                ),
            });
        }
        for j in &self.judgements {
            lines.push(match j {
                Judgement::NotDuplicate { paths, .. } => {
                    format!("review  {} and {}: not duplicates", paths[0], paths[1])
                }
                Judgement::LabelCorrect { path, label, .. } => {
                    format!("review  {path}: label `{label}` is correct")
                }
            });
        }
        for r in &self.refused {
            lines.push(format!("refused {} {}: {}", r.action, r.path, r.reason));
        }
        lines
    }
}

/// The undo log, `apply-NNNN/undo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UndoLog {
    format: String,
    version: u32,
    /// "applying" (written before the first move), "applied", or "undone".
    state: String,
    moves: Vec<LoggedMove>,
    /// Folders the apply created inside the dataset (relative), removed again by undo when
    /// they are empty.
    created_dirs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoggedMove {
    from: String,
    to: String,
    to_root: Root,
    content_hash: String,
    done: bool,
}

fn write_log(dir: &Path, log: &UndoLog) -> Result<()> {
    let json = serde_json::to_vec_pretty(log).context("could not serialise the undo log")?;
    fsutil::write_atomic(&dir.join(UNDO_LOG), &json)
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub moved: usize,
    pub judgements_recorded: usize,
    /// The undo log, when files moved.
    pub undo_log: Option<PathBuf>,
    /// The plan's refusals and any move that failed.
    pub refused: Vec<Refused>,
}

/// Moves a file, across file systems if need be (copy, check, then remove the source).
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {
            std::fs::copy(from, to)?;
            let same = std::fs::read(from)? == std::fs::read(to)?;
            if !same {
                let _ = std::fs::remove_file(to);
                return Err(std::io::Error::other("the copy differs from the original"));
            }
            std::fs::remove_file(from)
        }
        other => other,
    }
}

/// Creates `dir` (inside `root`) and its missing parents, noting each one created.
fn create_dirs(root: &Path, dir: &Path, created: &mut Vec<String>) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for folder in missing.iter().rev() {
        std::fs::create_dir(folder)?;
        if let Ok(rel) = folder.strip_prefix(root) {
            created.push(crate::dataset::rel_string(rel));
        }
    }
    Ok(())
}

/// Carries out a plan: the moves (with the undo log written first), then the judgements.
pub fn execute(plan: &Plan) -> Result<Applied> {
    let mut applied = Applied {
        refused: plan.refused.clone(),
        ..Applied::default()
    };
    if !plan.moves.is_empty() {
        fsutil::create_dir_all(&plan.apply_dir)?;
        let mut log = UndoLog {
            format: UNDO_FORMAT.into(),
            version: UNDO_VERSION,
            state: "applying".into(),
            moves: plan
                .moves
                .iter()
                .map(|m| LoggedMove {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    to_root: m.to_root.clone(),
                    content_hash: hash_hex(m.content_hash),
                    done: false,
                })
                .collect(),
            created_dirs: Vec::new(),
        };
        write_log(&plan.apply_dir, &log)?;
        for (i, m) in plan.moves.iter().enumerate() {
            let from = plan.root.join(&m.from);
            let to = plan.target(&m.to_root, &m.to);
            let result = to
                .parent()
                .map_or(Ok(()), |dir| {
                    let mut created = Vec::new();
                    let made = create_dirs(&plan.root, dir, &mut created);
                    if m.to_root == Root::Dataset {
                        log.created_dirs.extend(created);
                    }
                    made
                })
                .and_then(|()| {
                    // Checked again at the last moment: nothing is ever overwritten.
                    if std::fs::symlink_metadata(&to).is_ok() {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "destination exists",
                        ))
                    } else {
                        move_file(&from, &to)
                    }
                });
            match result {
                Ok(()) => {
                    log.moves[i].done = true;
                    applied.moved += 1;
                }
                Err(err) => applied.refused.push(Refused {
                    path: m.from.clone(),
                    action: match m.kind {
                        MoveKind::Relabel { .. } => "relabel",
                        MoveKind::Remove => "remove",
                    },
                    reason: if err.kind() == std::io::ErrorKind::AlreadyExists {
                        Refusal::Clash(m.to.clone())
                    } else {
                        Refusal::Io(err.to_string())
                    },
                }),
            }
        }
        log.state = "applied".into();
        write_log(&plan.apply_dir, &log)?;
        applied.undo_log = Some(plan.apply_dir.join(UNDO_LOG));
    }
    if !plan.judgements.is_empty() {
        let mut review = ReviewFile::load(&plan.root)?.unwrap_or_default();
        for judgement in &plan.judgements {
            let added = match judgement {
                Judgement::NotDuplicate { hashes, .. } => {
                    review.add_not_duplicate(hashes.0, hashes.1)
                }
                Judgement::LabelCorrect { hash, label, .. } => {
                    review.add_label_correct(*hash, label)
                }
            };
            applied.judgements_recorded += usize::from(added);
        }
        if applied.judgements_recorded > 0 {
            review.save(&plan.root)?;
        }
    }
    Ok(applied)
}

/// What [`undo`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct Undone {
    /// The undo log replayed.
    pub log: PathBuf,
    /// "moved back a → b" lines.
    pub lines: Vec<String>,
    pub moved_back: usize,
    pub refused: Vec<Refused>,
}

/// Replays the newest undo log not yet undone, in reverse.
pub fn undo(dataset: &Path, config: &DatasetConfig, options: &Options) -> Result<Undone> {
    let (root, _) = root_and_layout(dataset, config)?;
    let quarantine = quarantine_root(&root, options.quarantine.as_deref())?;
    let mut newest = None;
    for (_, dir) in apply_dirs(&quarantine).into_iter().rev() {
        let path = dir.join(UNDO_LOG);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let log: UndoLog = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a readable undo log", path.display()))?;
        if log.format == UNDO_FORMAT && log.state != "undone" {
            newest = Some((dir, log));
            break;
        }
    }
    let Some((apply_dir, mut log)) = newest else {
        bail!(
            "nothing to undo: {} holds no apply that is not undone yet (give --quarantine DIR \
             if the apply used one)",
            quarantine.display()
        );
    };
    let mut undone = Undone {
        log: apply_dir.join(UNDO_LOG),
        ..Undone::default()
    };
    for m in log.moves.iter_mut().rev() {
        let now = match m.to_root {
            Root::Dataset => root.join(&m.to),
            Root::Quarantine => apply_dir.join(&m.to),
        };
        let back = root.join(&m.from);
        let now_there = std::fs::symlink_metadata(&now).is_ok();
        let back_there = std::fs::symlink_metadata(&back).is_ok();
        let refuse = |undone: &mut Undone, reason: Refusal| {
            undone.refused.push(Refused {
                path: m.from.clone(),
                action: "undo",
                reason,
            })
        };
        if !now_there {
            if !back_there {
                refuse(&mut undone, Refusal::Missing);
            }
            // Otherwise never moved (an apply killed half-way) or already moved back.
            continue;
        }
        if back_there {
            refuse(&mut undone, Refusal::Clash(m.from.clone()));
            continue;
        }
        let unchanged = std::fs::read(&now)
            .ok()
            .zip(parse_hash(&m.content_hash))
            .is_some_and(|(bytes, hash)| xxh3_128(&bytes) == hash);
        if !unchanged {
            refuse(&mut undone, Refusal::Changed);
            continue;
        }
        undone
            .lines
            .push(format!("move back {} → {}", now.display(), m.from));
        if options.dry_run {
            continue;
        }
        let mut created = Vec::new();
        let result = back
            .parent()
            .map_or(Ok(()), |dir| create_dirs(&root, dir, &mut created))
            .and_then(|()| move_file(&now, &back));
        match result {
            Ok(()) => {
                m.done = false;
                undone.moved_back += 1;
            }
            Err(err) => refuse(&mut undone, Refusal::Io(err.to_string())),
        }
    }
    if options.dry_run {
        return Ok(undone);
    }
    // Folders the apply created, deepest first, if they are empty now (never a file).
    let mut dirs = log.created_dirs.clone();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for dir in dirs {
        let _ = std::fs::remove_dir(root.join(dir));
    }
    remove_empty_dirs(&apply_dir);
    if undone.refused.is_empty() {
        log.state = "undone".into();
    }
    write_log(&apply_dir, &log)?;
    Ok(undone)
}

/// Removes the empty folders under `dir` (the quarantine's, after an undo), keeping `dir`.
fn remove_empty_dirs(dir: &Path) {
    let mut folders: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    folders.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for folder in folders {
        let _ = std::fs::remove_dir(folder);
    }
}

/// The review file's path in a dataset (for messages).
pub fn review_file_path(plan: &Plan) -> PathBuf {
    plan.root.join(reviewfile::FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(list: Vec<Decision>) -> DecisionsFile {
        DecisionsFile {
            format: super::super::decisions::FORMAT.into(),
            version: 1,
            report_id: None,
            dataset: None,
            decisions: list,
        }
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) -> String {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        hash_hex(xxh3_128(bytes))
    }

    #[test]
    fn hostile_paths_and_class_names_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let hash = write(&root, "cat/a.png", b"a");
        write(&dir.path().join("outside"), "x.png", b"x");
        let relabel = |path: &str, to: &str| Decision::Relabel {
            path: path.into(),
            content_hash: hash.clone(),
            to: to.into(),
        };
        let file = decisions(vec![
            relabel("../outside/x.png", "dog"),
            relabel("/etc/passwd", "dog"),
            relabel("cat/a.png", ".."),
            relabel("cat/a.png", "a/b"),
            relabel("cat/a.png", ".hidden"),
            relabel("cat/a.png", "cat"),
            relabel("cat/missing.png", "dog"),
            relabel("cat/a.png", "dog"),
            relabel("cat/a.png", "cow"),
        ]);
        let plan = plan(&file, &root, &DatasetConfig::default(), &Options::default()).unwrap();
        let reasons: Vec<_> = plan.refused.iter().map(|r| r.reason.clone()).collect();
        assert_eq!(
            reasons,
            vec![
                Refusal::ParentComponent,
                Refusal::AbsolutePath,
                Refusal::BadClass("..".into()),
                Refusal::BadClass("a/b".into()),
                Refusal::BadClass(".hidden".into()),
                Refusal::SameClass("cat".into()),
                Refusal::Missing,
                Refusal::AlreadyDecided,
            ]
        );
        assert_eq!(plan.moves.len(), 1);
        assert_eq!(plan.moves[0].to, "dog/a.png");
        assert!(root.join("cat/a.png").exists(), "planning changed nothing");
    }

    #[test]
    fn a_quarantine_inside_the_dataset_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        write(&root, "cat/a.png", b"a");
        let options = Options {
            dry_run: false,
            quarantine: Some(root.join("cat/q")),
        };
        let err = plan(
            &decisions(vec![]),
            &root,
            &DatasetConfig::default(),
            &options,
        )
        .unwrap_err();
        assert!(err.downcast_ref::<ApplyError>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains("--quarantine"));
    }

    #[test]
    fn every_refusal_is_worded() {
        for reason in [
            Refusal::Changed,
            Refusal::CifarRecord,
            Refusal::Manifest("labels.csv".into()),
            Refusal::Clash("dog/a.png".into()),
        ] {
            assert!(reason.describe().len() > 20, "{reason:?}");
        }
    }
}
