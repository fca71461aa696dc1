//! Folder-per-class datasets: `root/<class>/<image>` and `root/<split>/<class>/<image>`.
//!
//! A split level is recognised when a top-level folder has a split name (train, val, valid,
//! validation, dev, test, ...; case-insensitive). Files below a class folder, at any depth,
//! carry that class's label (torchvision's ImageFolder does the same).
//!
//! Discovery never reads file contents: whether a file is an image is decided by ingest from
//! its bytes, so a JPEG named `.png` or without an extension is still analysed. What is
//! listed here as skipped is what can be told from names alone: hidden files, OS litter,
//! files outside any class folder, walk errors (unreadable folders, symlink loops).

use std::path::{Component, Path};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use walkdir::WalkDir;

use super::{
    DatasetKind, Discovery, FileNote, FileRole, SPLIT_NAMES, SourceFile, rel_string, stat_identity,
};

/// Names of files that operating systems and tools leave behind.
const OS_LITTER: &[&str] = &["thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"];
/// Folders that hold only OS metadata.
const OS_LITTER_DIRS: &[&str] = &["__macosx", "$recycle.bin", "system volume information"];

pub fn discover(root: &Path) -> Result<Discovery> {
    discover_with(root, true, None)
}

/// Lists a folder dataset. `follow_symlinks` follows links to files and folders; loops are
/// detected by walkdir and listed as skipped. `exclude` is aldente's own output folder when it
/// lies inside the dataset: it is never searched, so the cache never becomes "data".
pub fn discover_with(
    root: &Path,
    follow_symlinks: bool,
    exclude: Option<&Path>,
) -> Result<Discovery> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("cannot open the dataset folder {}", root.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a folder: give the dataset's root folder (it holds one folder per class, \
             or train/test folders that do)",
            root.display()
        );
    }
    let has_splits = has_split_folders(root)?;

    // Candidates first (no stat), then one stat per file in parallel, then one sort by
    // path: on 60,000 files this is three times faster than stat-as-you-walk with a
    // sorted walker (measured on CIFAR-10, warm page cache).
    let mut candidates: Vec<(String, FileRole)> = Vec::new();
    let mut skipped = Vec::new();
    // Runs of files in one folder are stat'ed on the pool while the walk goes on; each run's
    // paths travel to the task and back with its results (no copies).
    type StatBatch = (usize, Vec<std::path::PathBuf>, Vec<Identity>);
    let stat_results: std::sync::Mutex<Vec<StatBatch>> = Default::default();
    let mut pending: Vec<std::path::PathBuf> = Vec::new();
    // Files in one folder share their role: remember the last folder's.
    let mut last_role: Option<(std::path::PathBuf, Result<FileRole, String>)> = None;
    let walker = WalkDir::new(root)
        .follow_links(follow_symlinks)
        .min_depth(1);
    let mut names = Interner::default();
    let mut it = walker.into_iter();
    rayon::scope(|scope| {
        let flush = |pending: &mut Vec<std::path::PathBuf>, start: usize| {
            if pending.is_empty() {
                return;
            }
            let batch = std::mem::take(pending);
            let results = &stat_results;
            scope.spawn(move |_| {
                let identities = stat_run(&batch);
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((start, batch, identities));
            });
        };
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    let path = err
                        .path()
                        .and_then(|p| p.strip_prefix(root).ok())
                        .map(rel_string)
                        .unwrap_or_else(|| "(unknown path)".to_string());
                    let reason = if err.loop_ancestor().is_some() {
                        "symbolic link loop: the link points back to a folder that contains it"
                            .to_string()
                    } else {
                        walk_error_reason(&err)
                    };
                    skipped.push(FileNote { path, reason });
                    continue;
                }
            };
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let rel_path = rel_string(rel);
            let name = entry.file_name().to_string_lossy();
            let is_any = |list: &[&str]| list.iter().any(|x| x.eq_ignore_ascii_case(&name));
            if entry.file_type().is_dir() {
                if exclude.is_some_and(|ex| super::same_dir(entry.path(), ex)) {
                    skipped.push(FileNote {
                        path: rel_path,
                        reason: "aldente's output folder (not searched)".into(),
                    });
                    it.skip_current_dir();
                } else if name.starts_with('.') {
                    skipped.push(FileNote {
                        path: rel_path,
                        reason: "hidden folder (not searched)".into(),
                    });
                    it.skip_current_dir();
                } else if is_any(OS_LITTER_DIRS) {
                    skipped.push(FileNote {
                        path: rel_path,
                        reason: "operating-system metadata folder (not searched)".into(),
                    });
                    it.skip_current_dir();
                }
                continue;
            }
            if !entry.file_type().is_file() {
                skipped.push(FileNote {
                    path: rel_path,
                    reason: "not a regular file (device, socket, pipe or broken link)".into(),
                });
                continue;
            }
            if super::is_review_file(entry.depth(), &name) {
                continue;
            }
            if name.starts_with('.') {
                let reason = if name.eq_ignore_ascii_case(".ds_store") {
                    "operating-system litter (.DS_Store)"
                } else {
                    "hidden file"
                };
                skipped.push(FileNote {
                    path: rel_path,
                    reason: reason.into(),
                });
                continue;
            }
            if is_any(OS_LITTER) {
                skipped.push(FileNote {
                    path: rel_path,
                    reason: format!("operating-system litter ({name})"),
                });
                continue;
            }
            let parent = entry.path().parent();
            let role = match &last_role {
                Some((folder, role)) if Some(folder.as_path()) == parent => role.clone(),
                _ => {
                    let role = role_of(rel, has_splits, &mut names);
                    last_role = parent.map(|p| (p.to_path_buf(), role.clone()));
                    role
                }
            };
            let role = match role {
                Ok(role) => role,
                Err(reason) => {
                    skipped.push(FileNote {
                        path: rel_path,
                        reason,
                    });
                    continue;
                }
            };
            let path = entry.into_path();
            let new_folder = pending.first().is_some_and(|first| {
                first.parent().map(Path::as_os_str) != path.parent().map(Path::as_os_str)
            });
            if new_folder || pending.len() >= STAT_CHUNK {
                let start = candidates.len() - pending.len();
                flush(&mut pending, start);
            }
            pending.push(path);
            candidates.push((rel_path, role));
        }
        let start = candidates.len() - pending.len();
        flush(&mut pending, start);
    });
    let mut batches = stat_results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    batches.sort_unstable_by_key(|(start, _, _)| *start);
    let stat_of = batches
        .into_iter()
        .flat_map(|(_, paths, ids)| paths.into_iter().zip(ids));
    let stats: Vec<Result<SourceFile, FileNote>> = candidates
        .into_iter()
        .zip(stat_of)
        .map(|((rel_path, role), (abs_path, identity))| match identity {
            Ok((size, mtime_ns, ino)) => Ok(SourceFile {
                rel_path,
                abs_path,
                size,
                mtime_ns,
                ino,
                role,
            }),
            Err(err) => Err(FileNote {
                path: rel_path,
                reason: format!("could not be read: {err}"),
            }),
        })
        .collect();
    let mut files = Vec::with_capacity(stats.len());
    for stat in stats {
        match stat {
            Ok(file) => files.push(file),
            Err(note) => skipped.push(note),
        }
    }
    files.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Discovery {
        kind: DatasetKind::Folder { has_splits },
        files,
        skipped,
        class_names: None,
    })
}

type Identity = std::io::Result<(u64, i128, u64)>;

/// Files stat'ed per batch: small enough to share the work between threads.
const STAT_CHUNK: usize = 1024;

/// Size, mtime and inode of files in one folder. They are stat'ed relative to an open handle
/// on the folder (`fstatat`), which skips resolving the whole path again for each file: on
/// CIFAR-10 this halved the cost of a warm rerun's 60,000 stats.
#[cfg(unix)]
fn stat_run(files: &[std::path::PathBuf]) -> Vec<Identity> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let Some(folder) = files.first().and_then(|f| f.parent()) else {
        return Vec::new();
    };
    let Ok(dir) = rustix::fs::open(
        folder,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        // Fall back to full paths; errors are then reported per file.
        return files.iter().map(|f| stat_path(f)).collect();
    };
    files
        .iter()
        .map(|path| {
            let Some(name) = path.file_name() else {
                return stat_path(path);
            };
            // Follows symbolic links, like fs::metadata.
            match rustix::fs::statat(&dir, name, AtFlags::empty()) {
                Ok(st) => Ok((
                    st.st_size as u64,
                    i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
                    st.st_ino,
                )),
                Err(err) => Err(std::io::Error::from(err)),
            }
        })
        .collect()
}

#[cfg(not(unix))]
fn stat_run(files: &[std::path::PathBuf]) -> Vec<Identity> {
    files.iter().map(|f| stat_path(f)).collect()
}

fn stat_path(path: &Path) -> Identity {
    std::fs::metadata(path).map(|meta| stat_identity(&meta))
}

/// Hands out one shared string per distinct class or split name.
#[derive(Default)]
struct Interner(std::collections::HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.0.insert(name.to_string(), shared.clone());
        shared
    }
}

/// The split and label a file gets from the folders it sits in, or why it gets none.
fn role_of(rel: &Path, has_splits: bool, names: &mut Interner) -> Result<FileRole, String> {
    // Only the first three components matter (split, class, and whether there is more).
    let parts: Vec<std::borrow::Cow<str>> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy()),
            _ => None,
        })
        .take(3)
        .collect();
    if has_splits {
        match parts.len() {
            0 | 1 => Err("not inside a split and class folder (e.g. train/<class>/)".into()),
            2 => Err(format!(
                "not inside a class folder: files in `{}` must sit in `{}/<class>/`",
                parts[0], parts[0]
            )),
            _ => {
                if !SPLIT_NAMES.contains(&parts[0].to_lowercase().as_str()) {
                    return Err(format!(
                        "folder `{}` is not a split folder (expected train, val, test, ...)",
                        parts[0]
                    ));
                }
                Ok(FileRole::Image {
                    split: Some(names.get(&parts[0])),
                    label: names.get(&parts[1]),
                })
            }
        }
    } else {
        match parts.len() {
            0 | 1 => Err("not inside a class folder (files must sit in <class>/)".into()),
            _ => Ok(FileRole::Image {
                split: None,
                label: names.get(&parts[0]),
            }),
        }
    }
}

/// Whether the dataset is cut into split folders: any top-level folder named like a split
/// (then every image sits in `<split>/<class>/`). `aldente apply` keeps the split folder
/// of a relabelled file by the same rule.
pub fn has_split_folders(root: &Path) -> Result<bool> {
    Ok(top_level_dirs(root)?
        .iter()
        .any(|name| SPLIT_NAMES.contains(&name.to_lowercase().as_str())))
}

fn top_level_dirs(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root)
        .with_context(|| format!("cannot list the dataset folder {}", root.display()))?
    {
        let Ok(entry) = entry else { continue };
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// Why a walk entry could not be listed: links that lead nowhere are named as such (walkdir
/// only says "No such file or directory" or "Too many levels of symbolic links").
fn walk_error_reason(err: &walkdir::Error) -> String {
    let link_target = err
        .path()
        .and_then(|p| std::fs::read_link(p).ok())
        .map(|t| t.to_string_lossy().into_owned());
    let io = err.io_error();
    match (link_target, io) {
        (Some(target), Some(io)) if io.kind() == std::io::ErrorKind::NotFound => format!(
            "broken symbolic link: its target `{target}` does not exist (fix or delete the link)"
        ),
        // ELOOP: the link leads back to itself through one or more links.
        (Some(target), Some(io)) if io.raw_os_error() == Some(libc::ELOOP) => format!(
            "symbolic link loop: `{target}` leads back to the link itself (fix or delete the link)"
        ),
        _ => format!("could not be listed: {}", io_reason(err)),
    }
}

/// The io error behind a walkdir error, in words.
fn io_reason(err: &walkdir::Error) -> String {
    match err.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            "permission denied (check the file's permissions)".into()
        }
        Some(io) => io.to_string(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn split_layout_gives_split_and_label() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "train/cat/a.jpg");
        touch(dir.path(), "Test/dog/b.png");
        touch(dir.path(), "train/README.txt");
        touch(dir.path(), "train/cat/.DS_Store");
        let found = discover(dir.path()).unwrap();
        assert_eq!(found.kind, DatasetKind::Folder { has_splits: true });
        let roles: Vec<_> = found
            .files
            .iter()
            .map(|f| (f.rel_path.as_str(), f.role.clone()))
            .collect();
        assert_eq!(
            roles,
            vec![
                (
                    "Test/dog/b.png",
                    FileRole::Image {
                        split: Some(Arc::from("Test")),
                        label: Arc::from("dog")
                    }
                ),
                (
                    "train/cat/a.jpg",
                    FileRole::Image {
                        split: Some(Arc::from("train")),
                        label: Arc::from("cat")
                    }
                ),
            ]
        );
        let skipped: Vec<_> = found.skipped.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(skipped, vec!["train/README.txt", "train/cat/.DS_Store"]);
    }

    #[test]
    fn flat_layout_labels_nested_files_by_class_folder() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "cat/sub/a.jpg");
        touch(dir.path(), "loose.jpg");
        let found = discover(dir.path()).unwrap();
        assert_eq!(found.kind, DatasetKind::Folder { has_splits: false });
        assert_eq!(found.files.len(), 1);
        assert_eq!(
            found.files[0].role,
            FileRole::Image {
                split: None,
                label: Arc::from("cat")
            }
        );
        assert_eq!(found.skipped[0].path, "loose.jpg");
    }

    #[test]
    fn missing_root_is_an_error_naming_it() {
        let err = discover(Path::new("/nonexistent/aldente-data")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/aldente-data"));
    }
}
