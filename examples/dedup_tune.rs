//! Tuning harness for the near-duplicate search and check on CIFAR-10 (not part of the
//! program): compiles `near.rs` and `search.rs` on their own so an experiment rebuilds in
//! seconds, runs candidate search + check over the whole dataset, and scores against known
//! partner pairs.
//!
//!     cargo run --release --example dedup_tune -- DATA PARTNERS.tsv TESTPAIRS.csv OUT.tsv [K]

#[path = "../src/stages/dedup/near.rs"]
#[allow(dead_code)]
mod near;
#[path = "../src/stages/dedup/search.rs"]
#[allow(dead_code)]
mod search;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::path::PathBuf::from(&args[0]);
    let k: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(5);
    let cache = std::path::Path::new("/tmp/dr/pixels.bin");
    let mut paths = Vec::new();
    for split in ["train", "test"] {
        let mut classes: Vec<_> = std::fs::read_dir(data.join(split))?
            .map(|e| e.unwrap().path())
            .collect();
        classes.sort();
        for c in classes {
            let mut files: Vec<_> = std::fs::read_dir(&c)?.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                paths.push(f.strip_prefix(&data)?.to_string_lossy().into_owned());
            }
        }
    }
    let n = paths.len();
    let pixels: Vec<u8> = if cache.exists() {
        std::fs::read(cache)?
    } else {
        let decoded: Vec<Vec<u8>> = paths
            .par_iter()
            .map(|p| {
                let img = image::open(data.join(p)).unwrap().to_rgb8();
                image::imageops::resize(&img, 32, 32, image::imageops::FilterType::Triangle)
                    .into_raw()
            })
            .collect();
        let flat: Vec<u8> = decoded.concat();
        std::fs::write(cache, &flat)?;
        flat
    };
    let index: HashMap<&str, usize> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();

    let started = Instant::now();
    let pictures: Vec<near::Picture> = (0..n)
        .into_par_iter()
        .map(|i| near::canonical(&pixels[i * 3072..(i + 1) * 3072], 32, 32))
        .collect();
    let dims = near::DESCRIPTOR_DIMS;
    let mut queries = Array2::<f32>::zeros((n * 2, dims));
    let (straight, mirrored) = queries.as_slice_mut().unwrap().split_at_mut(n * dims);
    straight
        .par_chunks_mut(dims)
        .zip(&pictures)
        .for_each(|(out, p)| near::descriptor(&p.grey, false, out));
    mirrored
        .par_chunks_mut(dims)
        .zip(straight.par_chunks(dims))
        .for_each(|(out, from)| near::mirror_descriptor(from, out));
    let base = queries.slice(ndarray::s![..n, ..]);
    let found = search::nearest(base, queries.view(), k + 1, 0x5eed_d00d);
    let mut found = found;
    let crop: f32 = std::env::var("CROP")
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0);
    let k2: usize = std::env::var("K2")
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(k);
    if crop > 0.0 {
        let mut cropped = Array2::<f32>::zeros((n, dims));
        cropped
            .as_slice_mut()
            .unwrap()
            .par_chunks_mut(dims)
            .zip(&pictures)
            .for_each(|(out, p)| near::cropped_descriptor(&p.grey, crop, out));
        let more = if std::env::var("SAME").is_ok() {
            let all =
                ndarray::concatenate(ndarray::Axis(0), &[queries.view(), cropped.view()]).unwrap();
            let t = Instant::now();
            let r = search::nearest(base, all.view(), k2 + 1, 0x5eed_d00d);
            println!("one call {:.2}s", t.elapsed().as_secs_f64());
            found = r[..2 * n].to_vec();
            r[2 * n..].to_vec()
        } else {
            search::nearest(base, cropped.view(), k2 + 1, 0x5eed_d00e)
        };
        // Straight only: queries 0..n.
        for (q, list) in more.into_iter().enumerate() {
            found[q].extend(list);
        }
    }
    let mut candidates: Vec<(u32, u32, bool)> = found
        .iter()
        .enumerate()
        .flat_map(|(q, list)| {
            let (i, m) = ((q % n) as u32, q >= n);
            list.iter()
                .filter(move |&&(j, _)| j != i)
                .map(move |&(j, _)| (i.min(j), i.max(j), m))
        })
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let search_s = started.elapsed().as_secs_f64();

    // Partner truth.
    let mut partners: Vec<(usize, usize)> = Vec::new();
    for line in std::fs::read_to_string(&args[1])?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        partners.push((index[f[0]], index[f[1]]));
    }
    let mut test_pairs: Vec<(usize, usize)> = Vec::new();
    for line in std::fs::read_to_string(&args[2])?.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[2] == "0" || f[2] == "1" {
            test_pairs.push((index[f[0]], index[f[1]]));
        }
    }
    let cand_set: HashSet<(u32, u32)> = candidates.iter().map(|&(i, j, _)| (i, j)).collect();
    let key = |a: usize, b: usize| ((a.min(b)) as u32, (a.max(b)) as u32);
    let in_cand = |&(a, b): &(usize, usize)| cand_set.contains(&key(a, b));
    println!(
        "k={k} candidates={} search {:.2}s; partner pairs in candidates: train/test {}/{}, test/test {}/{}",
        candidates.len(),
        search_s,
        partners.iter().filter(|p| in_cand(p)).count(),
        partners.len(),
        test_pairs.iter().filter(|p| in_cand(p)).count(),
        test_pairs.len()
    );

    let dot = |a: usize, b: usize, m: bool| {
        let qa = queries.row(a);
        let qb = queries.row(b + if m { n } else { 0 });
        qa.dot(&qb)
    };
    for p in partners.iter().chain(&test_pairs).filter(|p| !in_cand(p)) {
        let kth = |q: usize| found[q].last().map(|x| x.1).unwrap_or(0.0);
        println!(
            "  not a candidate: {} {} sim {:.3} mirrored {:.3}; kth {:.3} {:.3}",
            paths[p.0],
            paths[p.1],
            dot(p.0, p.1, false),
            dot(p.0, p.1, true),
            kth(p.0),
            kth(p.1)
        );
    }
    let partner_set: HashSet<(u32, u32)> = partners
        .iter()
        .chain(&test_pairs)
        .map(|&(a, b)| key(a, b))
        .collect();
    let t0 = Instant::now();
    let passing: Vec<(u32, u32, bool)> = candidates
        .par_iter()
        .copied()
        .filter(|&(i, j, m)| near::plausible(&pictures[i as usize], &pictures[j as usize], m, 3))
        .collect();
    let plausible_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let _aligned: Vec<f32> = passing
        .par_iter()
        .map(|&(i, j, m)| near::align(&pictures[i as usize], &pictures[j as usize], m, 3).distance)
        .collect();
    println!(
        "plausible {plausible_s:.2}s ({} of {} pass), align {:.2}s",
        passing.len(),
        candidates.len(),
        t0.elapsed().as_secs_f64()
    );
    let checking = Instant::now();
    let checked: Vec<(u32, u32, bool, bool, near::Alignment)> = candidates
        .par_iter()
        .filter_map(|&(i, j, m)| {
            let ok = near::plausible(&pictures[i as usize], &pictures[j as usize], m, 3);
            if !ok && !partner_set.contains(&(i, j)) {
                return None;
            }
            Some((
                i,
                j,
                m,
                ok,
                near::align(&pictures[i as usize], &pictures[j as usize], m, 3),
            ))
        })
        .filter(|c| c.4.correlation >= 0.7)
        .collect();
    let check_s = checking.elapsed().as_secs_f64();
    let mut best: BTreeMap<(u32, u32), (bool, near::Alignment)> = BTreeMap::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[3])?);
    for &(i, j, m, ok, al) in &checked {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.3}\t{:.3}\t{}\t{}\t{}",
            paths[i as usize],
            paths[j as usize],
            m,
            ok,
            al.distance,
            al.correlation,
            al.colour,
            al.colour_channels,
            al.detail,
            al.detail_robust,
            al.texture,
            al.zoom,
            al.dx,
            al.dy,
            al.swapped
        )?;
        if !ok {
            continue;
        }
        let e = best.entry((i, j)).or_insert((m, al));
        if al.distance < e.1.distance {
            *e = (m, al);
        }
    }
    println!("check {check_s:.2}s, {} rows", checked.len());
    // Scores at thresholds.
    let is_test = |i: usize| paths[i].starts_with("test/");
    for t in [0.06, 0.08, 0.09, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.25] {
        let links: HashSet<(u32, u32)> = best
            .iter()
            .filter(|(_, (_, al))| f64::from(al.distance) <= t)
            .map(|(k, _)| *k)
            .collect();
        let linked_to_train: HashSet<usize> = links
            .iter()
            .filter_map(|&(i, j)| {
                let (i, j) = (i as usize, j as usize);
                match (is_test(i), is_test(j)) {
                    (true, false) => Some(i),
                    (false, true) => Some(j),
                    _ => None,
                }
            })
            .collect();
        let tt = partners
            .iter()
            .filter(|p| linked_to_train.contains(&p.0))
            .count();
        let direct = partners
            .iter()
            .filter(|&&(a, b)| links.contains(&key(a, b)))
            .count();
        let ts = test_pairs
            .iter()
            .filter(|&&(a, b)| links.contains(&key(a, b)))
            .count();
        println!(
            "t={t:.2}: train/test {tt}/{} (direct partner {direct}), test/test {ts}/{}, test linked to train {}",
            partners.len(),
            test_pairs.len(),
            linked_to_train.len()
        );
    }
    Ok(())
}
