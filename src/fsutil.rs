//! All file I/O of the program goes through here, so every error names its path.
//!
//! `write_atomic` writes to a temporary file beside the target and renames it into place:
//! a reader (or a run killed half-way) sees the old file or the new one, never half of one.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("could not read {}", path.display()))
}

/// Reads a file whose size is already known (from discovery), without the extra `statx`
/// that `fs::read` makes to size its buffer: at 60,000 small files that call is 5% of ingest.
pub fn read_sized(path: &Path, size_hint: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_dataset_file(path)?;
    let mut bytes = Vec::with_capacity(size_hint as usize + 1);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens a dataset file for reading without updating its access time where the system
/// allows it (Linux, files the user owns), as backup tools do. A dataset copied with its
/// dates kept or last read a day ago otherwise gets every inode rewritten on the first scan:
/// 60,000 inode writes for CIFAR-10.
fn open_dataset_file(path: &Path) -> std::io::Result<fs::File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        // Files owned by someone else refuse O_NOATIME (EPERM); stop asking after the first.
        static REFUSED: AtomicBool = AtomicBool::new(false);
        if !REFUSED.load(Ordering::Relaxed) {
            match fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOATIME)
                .open(path)
            {
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                    REFUSED.store(true, Ordering::Relaxed)
                }
                other => return other,
            }
        }
    }
    fs::File::open(path)
}

pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("could not create folder {}", path.display()))
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("could not remove {}", path.display())),
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_parts(path, std::iter::once(bytes)).map(|_| ())
}

/// [`write_atomic`] of `parts` written one after another (buffered, so many small parts
/// cost few system calls); returns the bytes written.
pub fn write_atomic_parts<'a>(path: &Path, parts: impl Iterator<Item = &'a [u8]>) -> Result<u64> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent folder", path.display()))?;
    create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("could not create a temporary file in {}", dir.display()))?;
    let mut written = 0u64;
    {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        for part in parts {
            writer
                .write_all(part)
                .with_context(|| format!("could not write {}", path.display()))?;
            written += part.len() as u64;
        }
        writer
            .flush()
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    // Temporary files are created private (0600); the report is meant to be shared, so give
    // it the permissions an ordinary new file gets (0644 less the umask is not available
    // portably; 0644 is what `touch` gives under the usual umask).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .with_context(|| format!("could not set permissions of {}", path.display()))?;
    }
    // No fsync: a killed process loses nothing the kernel already holds, and the rename keeps
    // readers from ever seeing half a file. A power cut may lose the newest cache entry, which
    // the next run detects (missing or short artifact) and recomputes.
    tmp.persist(path)
        .map_err(|err| err.error)
        .with_context(|| format!("could not move the new {} into place", path.display()))?;
    Ok(written)
}

/// Size of a file in bytes, `None` if it does not exist or cannot be read.
pub fn file_len(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/artifact.bin");
        write_atomic(&target, b"first").unwrap();
        write_atomic(&target, b"second").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(target.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn read_error_names_the_path() {
        let err = read(Path::new("/nonexistent/aldente/x.bin")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/aldente/x.bin"));
    }
}
