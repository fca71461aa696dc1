//! Helper for bench/cifar10.sh: deterministic edits to a folder dataset.
//!
//!     bench_mutate relabel ROOT FROM TO N     move the first N files of ROOT/FROM to ROOT/TO
//!     bench_mutate repaint ROOT DIR N SEED    change the pixels of the first N files of ROOT/DIR
//!     bench_mutate add ROOT DIR N SEED        add N new pictures to ROOT/DIR (repainted copies)
//!     bench_mutate remove ROOT DIR N AWAY     move the first N files of ROOT/DIR out to AWAY
//!
//! `repaint` draws a SEED-dependent 4x4 patch into each image and re-encodes it as JPEG,
//! so every run produces content the cache has never seen.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn first_files(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.len() < n {
        bail!("{} has only {} files", dir.display(), files.len());
    }
    files.truncate(n);
    Ok(files)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("relabel") if args.len() == 6 => {
            let root = Path::new(&args[2]);
            let n: usize = args[5].parse()?;
            let to = root.join(&args[4]);
            for file in first_files(&root.join(&args[3]), n)? {
                let name = file.file_name().context("file name")?.to_string_lossy();
                let target = to.join(format!("moved_{name}"));
                std::fs::rename(&file, &target)
                    .with_context(|| format!("cannot move {}", file.display()))?;
            }
        }
        Some("add") if args.len() == 6 => {
            let root = Path::new(&args[2]);
            let dir = root.join(&args[3]);
            let n: usize = args[4].parse()?;
            let seed: u32 = args[5].parse()?;
            for (i, file) in first_files(&dir, n)?.into_iter().enumerate() {
                let target = dir.join(format!("added_{seed}_{i}.jpg"));
                repaint(&file, &target, seed.wrapping_add(7919), i)?;
            }
        }
        Some("remove") if args.len() == 6 => {
            let root = Path::new(&args[2]);
            let n: usize = args[4].parse()?;
            let away = Path::new(&args[5]);
            std::fs::create_dir_all(away)
                .with_context(|| format!("cannot create {}", away.display()))?;
            for file in first_files(&root.join(&args[3]), n)? {
                let name = file.file_name().context("file name")?.to_string_lossy();
                let target = away.join(name.as_ref());
                std::fs::rename(&file, &target)
                    .with_context(|| format!("cannot move {}", file.display()))?;
            }
        }
        Some("repaint") if args.len() == 6 => {
            let root = Path::new(&args[2]);
            let n: usize = args[4].parse()?;
            let seed: u32 = args[5].parse()?;
            for (i, file) in first_files(&root.join(&args[3]), n)?
                .into_iter()
                .enumerate()
            {
                repaint(&file, &file, seed, i)?;
            }
        }
        _ => bail!(
            "usage: bench_mutate relabel ROOT FROM TO N | repaint ROOT DIR N SEED | add ROOT DIR N SEED | remove ROOT DIR N AWAY"
        ),
    }
    Ok(())
}

/// Writes `from` with a SEED-dependent 4x4 patch to `to`: pixels no run has seen before.
fn repaint(from: &Path, to: &Path, seed: u32, i: usize) -> Result<()> {
    let mut img = image::open(from)
        .with_context(|| format!("cannot decode {}", from.display()))?
        .into_rgb8();
    let v = (seed.wrapping_mul(97).wrapping_add(i as u32 * 13) % 256) as u8;
    for y in 0..4.min(img.height()) {
        for x in 0..4.min(img.width()) {
            img.put_pixel(x, y, image::Rgb([v, 255 - v, v / 2]));
        }
    }
    img.save(to)
        .with_context(|| format!("cannot write {}", to.display()))
}
