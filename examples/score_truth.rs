//! Scores a CIFAR-10 report.json against the public annotations in the truth folder
//! (`../shared/data/truth`, see its README.md): a measuring tool for the duplicate and
//! label-issue work, not part of the program. Nothing here may tune the tool to the files
//! it lists; it only counts.
//!
//!     cargo build --release --example score_truth
//!     target/release/examples/score_truth --truth DIR [--data ROOT] [--sheets DIR]
//!         [--sample N] [--seed S] [--probe K] [--threshold T] [--candidates C]
//!         [--max-shift M] REPORT.json [OTHER.json]
//!
//! (`bench/score_truth.sh` fills in the usual folders.) With two reports the figures are
//! printed side by side.
//!
//! What is counted:
//! - **A link** between two images is either membership of one exact group or one entry of
//!   `near_pairs` / `cross_split` (any kind, mirror images included). "Direct" means such a
//!   link between the two images themselves; "component" means the two sit in one connected
//!   component of all links (so test A ~ test B ~ train C links A to train).
//! - **train/test**: a test image listed in `cifar10_copies_in_train.csv` is found when it
//!   is linked to any `train/` image (the annotation names no partner). Recall is given for
//!   judgments 0+1 (exact and near), each alone, and for 2 (very similar) separately. Also
//!   the number of distinct test images linked to train, and how many of those the
//!   annotation does not list (half the annotation is held out, so these are not all false).
//! - **test/test**: pairs of `cifar10_copies_within_test.csv`, found directly or via the same
//!   component.
//! - **label errors**: the report's `label_issues` restricted to `test/` paths, in report
//!   order; how many rows with `confirmed` = 1 are among the first 50/100/200 and among all,
//!   and of those found how many carry the same suggested label.
//!
//! With `--sheets DIR` (needs `--data`, the dataset root whose `train/` and `test/` the
//! paths name), contact sheets as PNG plus a `.txt` index per sheet:
//! - `missed-N.png`: annotated exact/near copies in train that the report does not link to
//!   train. Each cell: the test image, its closest partner in the report if it has one (any
//!   split), else "no link", and with `--probe` the probe's best train candidate.
//! - `unannotated-N.png`: a seeded random sample (`--sample`, default 40) of test images
//!   linked to train that the annotation does not list, each with its closest train partner,
//!   for a person to judge whether they are the same shot.
//!
//! With `--probe K` (needs `--data`), for every missed copy the tool's own descriptor and
//! alignment (`aldente::stages::dedup::near`) are run here against the train split: the K
//! train images with the most similar descriptor, straight and mirrored (0 = every train
//! image, slow; 1000 takes ~20 s on 2 cores), are aligned with the test image as `a` and the
//! closest is kept. For that candidate it prints the distance in both orders (the check is
//! not symmetric and the tool's order follows its pixel hashes), its descriptor rank among
//! all images (the tool's search keeps the top `--candidates` per picture, from either
//! side), whether the tool's approximate search proposes the pair when rerun here (on the
//! images in path order, so its k-means cells are not exactly the tool's), whether the quick
//! `plausible` check passes, and the distance against `--threshold`. Details go to
//! `probe.tsv` in the sheets folder. This shows what lies below the report's horizon: report.json lists only
//! pairs within the threshold. Images are decoded with the `image` crate, which may differ
//! from the tool's decoder by a grey level; distances are then off in the third decimal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aldente::neighbours::{self, Method, Search};
use aldente::stages::dedup::near;
use anyhow::{Context, Result, bail};
use image::{Rgb, RgbImage};
use rayon::prelude::*;
use serde_json::Value;

fn main() -> Result<()> {
    let args = Args::parse()?;
    let truth = Truth::load(&args.truth)?;
    let reports: Vec<Report> = args
        .reports
        .iter()
        .map(|p| Report::load(p))
        .collect::<Result<_>>()?;

    let tables: Vec<Vec<Row>> = reports.iter().map(|r| score(r, &truth)).collect();
    print_tables(&reports, &tables);
    if let [one, two] = &reports[..] {
        print_changes(one, two, &truth);
    }

    let dataset = match (&args.data, args.probe.is_some() || args.sheets.is_some()) {
        (Some(root), true) => Some(root.clone()),
        (None, true) => bail!("--sheets and --probe need --data ROOT (the dataset folder)"),
        _ => None,
    };
    let probe_base = match (&dataset, args.probe) {
        (Some(root), Some(_)) => Some(ProbeBase::load(root, args.candidates)?),
        _ => None,
    };
    for (n, report) in reports.iter().enumerate() {
        let prefix = if reports.len() > 1 {
            format!("r{}-", n + 1)
        } else {
            String::new()
        };
        let missed = missed_copies(report, &truth);
        let probes: Option<Vec<Probe>> = match (&probe_base, args.probe) {
            (Some(base), Some(k)) => Some(probe_missed(base, &missed, k, &args)),
            _ => None,
        };
        if let Some(probes) = &probes {
            print_probe_summary(report, &missed, probes, &args);
        }
        if let (Some(dir), Some(root)) = (&args.sheets, &dataset) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut images = ImageCache::new(root);
            let written = write_missed_sheets(
                dir,
                &prefix,
                report,
                &truth,
                &missed,
                probes.as_deref(),
                &mut images,
            )?;
            let sampled =
                write_unannotated_sheets(dir, &prefix, report, &truth, &args, &mut images)?;
            if let Some(probes) = &probes {
                write_probe_tsv(dir, &prefix, &missed, probes, &truth, &args)?;
            }
            println!(
                "sheets for {}: {} missed, {} unannotated links sampled, in {}",
                report.file.display(),
                written,
                sampled,
                dir.display()
            );
        }
    }
    Ok(())
}

struct Args {
    truth: PathBuf,
    data: Option<PathBuf>,
    sheets: Option<PathBuf>,
    sample: usize,
    seed: u64,
    /// Train candidates per orientation for the probe; 0 = all.
    probe: Option<usize>,
    threshold: f64,
    candidates: usize,
    max_shift: i32,
    reports: Vec<PathBuf>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut args = Args {
            truth: PathBuf::from("../shared/data/truth"),
            data: None,
            sheets: None,
            sample: 40,
            seed: 1,
            probe: None,
            threshold: 0.09,
            candidates: 5,
            max_shift: 3,
            reports: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--truth" => args.truth = value()?.into(),
                "--data" => args.data = Some(value()?.into()),
                "--sheets" => args.sheets = Some(value()?.into()),
                "--sample" => args.sample = value()?.parse()?,
                "--seed" => args.seed = value()?.parse()?,
                "--probe" => args.probe = Some(value()?.parse()?),
                "--threshold" => args.threshold = value()?.parse()?,
                "--candidates" => args.candidates = value()?.parse()?,
                "--max-shift" => args.max_shift = value()?.parse()?,
                "-h" | "--help" => {
                    println!(
                        "score_truth --truth DIR [--data ROOT] [--sheets DIR] [--sample N] \
                         [--seed S] [--probe K] [--threshold T] [--candidates C] \
                         [--max-shift M] REPORT.json [OTHER.json]\n(see the header of \
                         examples/score_truth.rs)"
                    );
                    std::process::exit(0);
                }
                f if f.starts_with("--") => bail!("unknown flag {f} (try --help)"),
                _ => args.reports.push(flag.into()),
            }
        }
        if args.reports.is_empty() || args.reports.len() > 2 {
            bail!("give one or two report.json files (try --help)");
        }
        Ok(args)
    }
}

// ---------------------------------------------------------------------------------------
// Inputs

struct LabelError {
    suggested: String,
    confirmed: bool,
}

struct Truth {
    /// test path -> judgment (0 exact, 1 near, 2 very similar).
    in_train: BTreeMap<String, u8>,
    within_test: Vec<(String, String, u8)>,
    label_errors: BTreeMap<String, LabelError>,
}

fn read_csv(path: &Path) -> Result<Vec<HashMap<String, String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?
        .split(',')
        .map(str::trim)
        .collect();
    Ok(lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(h, v)| (h.to_string(), v.trim().to_string()))
                .collect()
        })
        .collect())
}

fn field<'a>(row: &'a HashMap<String, String>, name: &str, file: &str) -> Result<&'a str> {
    row.get(name)
        .map(String::as_str)
        .with_context(|| format!("{file}: a row has no `{name}`"))
}

impl Truth {
    fn load(dir: &Path) -> Result<Truth> {
        let mut in_train = BTreeMap::new();
        let f = "cifar10_copies_in_train.csv";
        for row in read_csv(&dir.join(f))? {
            in_train.insert(
                field(&row, "test_path", f)?.to_string(),
                field(&row, "judgment", f)?.parse()?,
            );
        }
        let f = "cifar10_copies_within_test.csv";
        let within_test = read_csv(&dir.join(f))?
            .iter()
            .map(|row| {
                Ok((
                    field(row, "a", f)?.to_string(),
                    field(row, "b", f)?.to_string(),
                    field(row, "judgment", f)?.parse()?,
                ))
            })
            .collect::<Result<_>>()?;
        let f = "cifar10_label_errors.csv";
        let mut label_errors = BTreeMap::new();
        for row in read_csv(&dir.join(f))? {
            label_errors.insert(
                field(&row, "path", f)?.to_string(),
                LabelError {
                    suggested: field(&row, "suggested", f)?.to_string(),
                    confirmed: field(&row, "confirmed", f)? == "1",
                },
            );
        }
        Ok(Truth {
            in_train,
            within_test,
            label_errors,
        })
    }
}

#[derive(Clone)]
struct Link {
    partner: String,
    distance: f64,
    kind: String,
}

struct Issue {
    path: String,
    suggested: String,
}

struct Report {
    file: PathBuf,
    /// Every image in some link -> its direct partners.
    links: HashMap<String, Vec<Link>>,
    /// Every image in some link -> its connected component.
    component: HashMap<String, usize>,
    component_has_train: Vec<bool>,
    exact_groups: usize,
    near_pairs: usize,
    cross_split: usize,
    label_issues: Vec<Issue>,
    label_issue_total: Option<u64>,
}

fn is_train(path: &str) -> bool {
    path.starts_with("train/")
}

fn is_test(path: &str) -> bool {
    path.starts_with("test/")
}

impl Report {
    fn load(file: &Path) -> Result<Report> {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let dup = &json["duplicates"];
        let mut links: HashMap<String, Vec<Link>> = HashMap::new();
        let mut add = |a: &str, b: &str, distance: f64, kind: &str| {
            for (x, y) in [(a, b), (b, a)] {
                links.entry(x.to_string()).or_default().push(Link {
                    partner: y.to_string(),
                    distance,
                    kind: kind.to_string(),
                });
            }
        };
        let groups = dup["exact_groups"].as_array().cloned().unwrap_or_default();
        for group in &groups {
            let members: Vec<&str> = group
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    add(a, b, 0.0, "exact");
                }
            }
        }
        let mut counts = [0usize; 2];
        for (n, key) in ["near_pairs", "cross_split"].iter().enumerate() {
            for pair in dup[key].as_array().map(Vec::as_slice).unwrap_or_default() {
                let (Some(a), Some(b)) = (pair["a"].as_str(), pair["b"].as_str()) else {
                    continue;
                };
                counts[n] += 1;
                let distance = pair["distance"].as_f64().unwrap_or(f64::NAN);
                add(a, b, distance, pair["kind"].as_str().unwrap_or("?"));
            }
        }
        for list in links.values_mut() {
            list.sort_by(|x, y| {
                x.distance
                    .total_cmp(&y.distance)
                    .then_with(|| x.partner.cmp(&y.partner))
            });
            list.dedup_by(|x, y| x.partner == y.partner);
        }

        // Connected components by a breadth-first walk over the links.
        let mut component: HashMap<String, usize> = HashMap::new();
        let mut component_has_train = Vec::new();
        let mut starts: Vec<&String> = links.keys().collect();
        starts.sort();
        for start in starts {
            if component.contains_key(start) {
                continue;
            }
            let id = component_has_train.len();
            let mut has_train = false;
            let mut stack = vec![start.clone()];
            component.insert(start.clone(), id);
            while let Some(at) = stack.pop() {
                has_train |= is_train(&at);
                for link in &links[&at] {
                    if !component.contains_key(&link.partner) {
                        component.insert(link.partner.clone(), id);
                        stack.push(link.partner.clone());
                    }
                }
            }
            component_has_train.push(has_train);
        }

        let label_issues = json["label_issues"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|issue| {
                Some(Issue {
                    path: issue["path"].as_str()?.to_string(),
                    suggested: issue["suggested"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect();
        Ok(Report {
            file: file.to_path_buf(),
            links,
            component,
            component_has_train,
            exact_groups: groups.len(),
            near_pairs: counts[0],
            cross_split: counts[1],
            label_issues,
            label_issue_total: json["embedding"]["label_issue_total"].as_u64(),
        })
    }

    /// The closest train image linked directly to `path`.
    fn closest_train(&self, path: &str) -> Option<&Link> {
        self.links.get(path)?.iter().find(|l| is_train(&l.partner))
    }

    fn component_links_train(&self, path: &str) -> bool {
        self.component
            .get(path)
            .is_some_and(|&c| self.component_has_train[c])
    }

    fn linked_directly(&self, a: &str, b: &str) -> bool {
        self.links
            .get(a)
            .is_some_and(|l| l.iter().any(|l| l.partner == b))
    }

    fn same_component(&self, a: &str, b: &str) -> bool {
        matches!((self.component.get(a), self.component.get(b)), (Some(x), Some(y)) if x == y)
    }
}

// ---------------------------------------------------------------------------------------
// Scores

/// One printed line: a heading (no value) or a figure.
struct Row {
    label: String,
    value: Option<String>,
}

fn heading(label: &str) -> Row {
    Row {
        label: label.to_string(),
        value: None,
    }
}

fn figure(label: &str, value: String) -> Row {
    Row {
        label: label.to_string(),
        value: Some(value),
    }
}

fn ratio(found: usize, of: usize) -> String {
    if of == 0 {
        return format!("{found} / 0");
    }
    format!("{found} / {of} = {:.1}%", 100.0 * found as f64 / of as f64)
}

/// Upper edges of the closest-train distance bands; the last band is everything above.
const BANDS: [f64; 5] = [0.0, 0.02, 0.04, 0.06, 0.09];

/// How many of `distances` fall in each band of [`BANDS`].
fn bands(distances: &[f64]) -> String {
    let mut counts = Vec::new();
    let mut below = 0;
    for edge in BANDS {
        let n = distances.iter().filter(|&&d| d <= edge).count();
        counts.push((n - below).to_string());
        below = n;
    }
    counts.push((distances.len() - below).to_string());
    counts.join(" ")
}

fn score(report: &Report, truth: &Truth) -> Vec<Row> {
    let mut rows = vec![
        heading("report"),
        figure(
            "exact groups / near pairs / cross_split",
            format!(
                "{} / {} / {}",
                report.exact_groups, report.near_pairs, report.cross_split
            ),
        ),
        heading("train/test (cifar10_copies_in_train.csv)"),
    ];
    let annotated = |j: &[u8]| -> Vec<&String> {
        truth
            .in_train
            .iter()
            .filter(|(_, v)| j.contains(v))
            .map(|(k, _)| k)
            .collect()
    };
    let direct = |paths: &[&String]| {
        paths
            .iter()
            .filter(|p| report.closest_train(p).is_some())
            .count()
    };
    let via_component = |paths: &[&String]| {
        paths
            .iter()
            .filter(|p| report.component_links_train(p))
            .count()
    };
    let copies = annotated(&[0, 1]);
    rows.push(figure(
        "exact+near (j0, j1) linked to train directly",
        ratio(direct(&copies), copies.len()),
    ));
    for (j, name) in [(0u8, "  j0 exact"), (1, "  j1 near")] {
        let these = annotated(&[j]);
        rows.push(figure(name, ratio(direct(&these), these.len())));
    }
    rows.push(figure(
        "exact+near linked via a component",
        ratio(via_component(&copies), copies.len()),
    ));
    let similar = annotated(&[2]);
    rows.push(figure(
        "very similar (j2) linked directly",
        ratio(direct(&similar), similar.len()),
    ));
    let linked: Vec<&String> = report
        .links
        .keys()
        .filter(|p| is_test(p) && report.closest_train(p).is_some())
        .collect();
    let linked_component = report
        .component
        .keys()
        .filter(|p| is_test(p) && report.component_links_train(p))
        .count();
    let unannotated = linked
        .iter()
        .filter(|p| !truth.in_train.contains_key(p.as_str()))
        .count();
    rows.push(figure(
        "distinct test images linked to train directly",
        linked.len().to_string(),
    ));
    rows.push(figure("  via a component", linked_component.to_string()));
    rows.push(figure(
        "  not in the annotation (any judgment)",
        unannotated.to_string(),
    ));
    let closest = |annotated_copy: bool| -> Vec<f64> {
        linked
            .iter()
            .filter(|p| {
                matches!(truth.in_train.get(p.as_str()), Some(0 | 1)) == annotated_copy
                    && (annotated_copy || !truth.in_train.contains_key(p.as_str()))
            })
            .filter_map(|p| report.closest_train(p).map(|l| l.distance))
            .collect()
    };
    rows.push(figure(
        "closest-train distance =0 <=.02 <=.04 <=.06 <=.09 >.09: found j0/j1",
        bands(&closest(true)),
    ));
    rows.push(figure("  linked, unannotated", bands(&closest(false))));

    rows.push(heading(
        "test/test (cifar10_copies_within_test.csv; direct = a pair or one exact group)",
    ));
    for (js, name) in [
        (&[0u8, 1][..], "exact+near (j0, j1)"),
        (&[2][..], "very similar (j2)"),
    ] {
        let pairs: Vec<&(String, String, u8)> = truth
            .within_test
            .iter()
            .filter(|(_, _, j)| js.contains(j))
            .collect();
        let d = pairs
            .iter()
            .filter(|(a, b, _)| report.linked_directly(a, b))
            .count();
        let c = pairs
            .iter()
            .filter(|(a, b, _)| report.same_component(a, b))
            .count();
        rows.push(figure(
            &format!("{name} pairs linked directly"),
            ratio(d, pairs.len()),
        ));
        rows.push(figure(
            &format!("{name} pairs in one component"),
            ratio(c, pairs.len()),
        ));
    }

    rows.push(heading(
        "label errors (cifar10_label_errors.csv, confirmed = 1; test candidates in report order)",
    ));
    let confirmed = truth.label_errors.values().filter(|e| e.confirmed).count();
    let test_issues: Vec<&Issue> = report
        .label_issues
        .iter()
        .filter(|i| is_test(&i.path))
        .collect();
    rows.push(figure(
        "candidates: listed / test / label_issue_total",
        format!(
            "{} / {} / {}",
            report.label_issues.len(),
            test_issues.len(),
            report
                .label_issue_total
                .map_or("?".to_string(), |n| n.to_string())
        ),
    ));
    let hits = |n: usize| {
        test_issues
            .iter()
            .take(n)
            .filter(|i| truth.label_errors.get(&i.path).is_some_and(|e| e.confirmed))
            .count()
    };
    for n in [50, 100, 200] {
        let h = hits(n);
        rows.push(figure(
            &format!("confirmed in top {n}"),
            format!(
                "{h} of {confirmed} (precision {h}/{})",
                n.min(test_issues.len())
            ),
        ));
    }
    let found: Vec<&&Issue> = test_issues
        .iter()
        .filter(|i| truth.label_errors.get(&i.path).is_some_and(|e| e.confirmed))
        .collect();
    rows.push(figure(
        "confirmed among all test candidates",
        ratio(found.len(), confirmed),
    ));
    let same = found
        .iter()
        .filter(|i| truth.label_errors[&i.path].suggested == i.suggested)
        .count();
    rows.push(figure(
        "  of those, same suggested label",
        format!("{same} / {}", found.len()),
    ));
    rows
}

fn print_tables(reports: &[Report], tables: &[Vec<Row>]) {
    let width = tables[0]
        .iter()
        .filter(|r| r.value.is_some())
        .map(|r| r.label.len())
        .max()
        .unwrap_or(0)
        + 2;
    let col = tables[0]
        .iter()
        .filter_map(|r| r.value.as_ref().map(String::len))
        .max()
        .unwrap_or(0)
        + 3;
    for (n, report) in reports.iter().enumerate() {
        println!("[{}] {}", n + 1, report.file.display());
    }
    for (i, row) in tables[0].iter().enumerate() {
        match &row.value {
            None => {
                println!();
                println!("== {}", row.label);
            }
            Some(_) => {
                let mut line = format!("{:width$}", row.label);
                for (n, table) in tables.iter().enumerate() {
                    let value = table[i].value.as_deref().unwrap_or("");
                    if tables.len() > 1 {
                        let _ = write!(line, "[{}] {value:col$}", n + 1);
                    } else {
                        line.push_str(value);
                    }
                }
                println!("{}", line.trim_end());
            }
        }
    }
    println!();
}

/// Test images linked to train in one report and not the other, annotated copies apart.
fn print_changes(one: &Report, two: &Report, truth: &Truth) {
    let linked = |r: &Report| -> BTreeMap<String, bool> {
        r.links
            .keys()
            .filter(|p| is_test(p) && r.closest_train(p).is_some())
            .map(|p| (p.clone(), matches!(truth.in_train.get(p), Some(0 | 1))))
            .collect()
    };
    let (a, b) = (linked(one), linked(two));
    for (from, to, name) in [(&a, &b, "[2] not [1]"), (&b, &a, "[1] not [2]")] {
        let only: Vec<(&String, &bool)> =
            to.iter().filter(|(p, _)| !from.contains_key(*p)).collect();
        println!(
            "test images linked to train in {name}: {} ({} annotated exact/near): {}",
            only.len(),
            only.iter().filter(|(_, c)| **c).count(),
            only.iter()
                .take(12)
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
                + if only.len() > 12 { " ..." } else { "" }
        );
    }
    println!();
}

/// Annotated exact/near copies in train that the report does not link to train directly.
fn missed_copies(report: &Report, truth: &Truth) -> Vec<String> {
    truth
        .in_train
        .iter()
        .filter(|(p, j)| **j <= 1 && report.closest_train(p).is_none())
        .map(|(p, _)| p.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The probe: the tool's own descriptor and alignment, below the report's threshold.

struct ProbeBase {
    paths: Vec<String>,
    index: HashMap<String, usize>,
    pictures: Vec<near::Picture>,
    /// Row-major, `DESCRIPTOR_DIMS` per picture.
    straight: Vec<f32>,
    mirrored: Vec<f32>,
    /// The candidate pairs (lower index, higher index, mirrored) of the tool's approximate
    /// search run here on these descriptors.
    ivf: HashSet<(u32, u32, bool)>,
}

/// The tool's `dedup::SEARCH_SEED` (private there).
const SEARCH_SEED: u64 = 0x5eed_d00d;

impl ProbeBase {
    fn load(root: &Path, candidates: usize) -> Result<ProbeBase> {
        let started = Instant::now();
        let mut paths = Vec::new();
        for split in ["test", "train"] {
            let split_dir = root.join(split);
            let mut classes: Vec<_> = fs::read_dir(&split_dir)
                .with_context(|| format!("reading {}", split_dir.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .collect();
            classes.sort_by_key(|e| e.file_name());
            for class in classes {
                let mut files: Vec<String> = fs::read_dir(class.path())?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                files.sort();
                let class = class.file_name().to_string_lossy().into_owned();
                paths.extend(files.into_iter().map(|f| format!("{split}/{class}/{f}")));
            }
        }
        let pictures: Vec<near::Picture> = paths
            .par_iter()
            .map(|p| {
                let rgb = image::open(root.join(p))
                    .with_context(|| format!("decoding {p}"))?
                    .to_rgb8();
                Ok(near::canonical(rgb.as_raw(), rgb.width(), rgb.height()))
            })
            .collect::<Result<_>>()?;
        let dims = near::DESCRIPTOR_DIMS;
        let mut straight = vec![0f32; pictures.len() * dims];
        straight
            .par_chunks_mut(dims)
            .zip(&pictures)
            .for_each(|(out, p)| near::descriptor(&p.grey, false, out));
        let mut mirrored = vec![0f32; pictures.len() * dims];
        mirrored
            .par_chunks_mut(dims)
            .zip(straight.par_chunks(dims))
            .for_each(|(out, from)| near::mirror_descriptor(from, out));
        let index = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        // As `dedup::near_duplicates` does: straight descriptors as the base, straight and
        // mirrored ones as queries, `candidates + 1` neighbours each (the first is itself).
        let n = pictures.len();
        let base = ndarray::ArrayView2::from_shape((n, dims), &straight[..])?;
        let mut both = straight.clone();
        both.extend_from_slice(&mirrored);
        let queries = ndarray::ArrayView2::from_shape((2 * n, dims), &both[..])?;
        let search = Search {
            method: Method::Auto {
                exact_below: 8_192,
                probes: 6,
                seed: SEARCH_SEED,
            },
            same_set: false,
        };
        let found = neighbours::search(queries, base, candidates + 1, &search);
        let ivf = (0..found.rows())
            .flat_map(|q| {
                let (i, mirrored) = ((q % n) as u32, q >= n);
                found
                    .of(q)
                    .iter()
                    .filter(move |&&j| j != i)
                    .map(move |&j| (i.min(j), i.max(j), mirrored))
            })
            .collect();
        eprintln!(
            "probe: {} pictures described in {:.1}s",
            paths.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(ProbeBase {
            paths,
            index,
            pictures,
            straight,
            mirrored,
            ivf,
        })
    }

    fn descriptor(&self, i: usize, mirrored: bool) -> &[f32] {
        let d = near::DESCRIPTOR_DIMS;
        let all = if mirrored {
            &self.mirrored
        } else {
            &self.straight
        };
        &all[i * d..(i + 1) * d]
    }

    /// Similarity of picture `q` (mirrored if asked) to every picture's straight descriptor,
    /// as the tool's search compares them.
    fn similarities(&self, q: usize, mirrored: bool) -> Vec<f32> {
        let query = self.descriptor(q, mirrored);
        self.straight
            .par_chunks(near::DESCRIPTOR_DIMS)
            .map(|d| d.iter().zip(query).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// 1-based rank of `target` among all pictures but `q` by similarity to `q`.
fn rank(similarities: &[f32], q: usize, target: usize) -> usize {
    let s = similarities[target];
    1 + similarities
        .iter()
        .enumerate()
        .filter(|&(i, &v)| i != q && i != target && v > s)
        .count()
}

struct Probe {
    /// The closest train candidate found, if the test image was in the dataset.
    best: Option<ProbeHit>,
}

struct ProbeHit {
    train: String,
    mirrored: bool,
    /// The test image aligned with the train one as `a`, and the other way round: the
    /// check is not symmetric (the zoom applies to `b`), and the tool's order is that of
    /// its pixel hashes, unknown here.
    alignment: near::Alignment,
    reverse_distance: f32,
    plausible: bool,
    /// Rank of the candidate among the test image's descriptor neighbours (of all
    /// pictures), and of the test image among the candidate's.
    rank: usize,
    reverse_rank: usize,
    /// Whether the approximate search reproduced here proposed the pair.
    ivf: bool,
}

impl ProbeHit {
    fn distance(&self) -> f32 {
        self.alignment.distance.min(self.reverse_distance)
    }

    fn proposed(&self, candidates: usize) -> bool {
        self.rank <= candidates || self.reverse_rank <= candidates
    }
}

fn probe_missed(base: &ProbeBase, missed: &[String], k: usize, args: &Args) -> Vec<Probe> {
    let started = Instant::now();
    let train: Vec<usize> = (0..base.paths.len())
        .filter(|&i| is_train(&base.paths[i]))
        .collect();
    let probes = missed
        .iter()
        .map(|path| {
            let Some(&q) = base.index.get(path) else {
                return Probe { best: None };
            };
            let mut best: Option<ProbeHit> = None;
            for mirrored in [false, true] {
                let sims = base.similarities(q, mirrored);
                let mut chosen = train.clone();
                if k > 0 && k < chosen.len() {
                    chosen.select_nth_unstable_by(k, |&a, &b| sims[b].total_cmp(&sims[a]));
                    chosen.truncate(k);
                }
                let aligned = chosen
                    .par_iter()
                    .map(|&j| {
                        let a = near::align(
                            &base.pictures[q],
                            &base.pictures[j],
                            mirrored,
                            args.max_shift,
                        );
                        (j, a)
                    })
                    .min_by(|x, y| x.1.distance.total_cmp(&y.1.distance));
                let Some((j, alignment)) = aligned else {
                    continue;
                };
                // The straight match wins a tie, as in the tool.
                let better = best.as_ref().is_none_or(|b| {
                    alignment.distance + if mirrored { 0.05 } else { 0.0 } < b.alignment.distance
                });
                if better {
                    let reverse = base.similarities(j, mirrored);
                    best = Some(ProbeHit {
                        train: base.paths[j].clone(),
                        mirrored,
                        alignment,
                        plausible: near::plausible(
                            &base.pictures[q],
                            &base.pictures[j],
                            mirrored,
                            args.max_shift,
                        ),
                        rank: rank(&sims, q, j),
                        reverse_rank: rank(&reverse, j, q),
                        reverse_distance: near::align(
                            &base.pictures[j],
                            &base.pictures[q],
                            mirrored,
                            args.max_shift,
                        )
                        .distance,
                        ivf: base
                            .ivf
                            .contains(&(q.min(j) as u32, q.max(j) as u32, mirrored)),
                    });
                }
            }
            Probe { best }
        })
        .collect();
    eprintln!(
        "probe: {} missed copies checked in {:.1}s",
        missed.len(),
        started.elapsed().as_secs_f64()
    );
    probes
}

fn print_probe_summary(report: &Report, missed: &[String], probes: &[Probe], args: &Args) {
    println!(
        "== probe of the {} missed exact/near copies in {}: closest train candidate by the \
         tool's own check (the better of both orders)",
        missed.len(),
        report.file.display()
    );
    println!(
        "   columns: candidates; in the exact descriptor top {k} (either side); proposed by \
         the approximate search (run here); pass `plausible`; mirrored",
        k = args.candidates
    );
    let hits: Vec<&ProbeHit> = probes.iter().filter_map(|p| p.best.as_ref()).collect();
    let mut below = f32::NEG_INFINITY;
    for edge in [args.threshold as f32, 0.15, 0.25, 0.4, f32::INFINITY] {
        let band: Vec<&&ProbeHit> = hits
            .iter()
            .filter(|h| h.distance() > below && h.distance() <= edge)
            .collect();
        let from = if below.is_finite() {
            format!("({below:.2},")
        } else {
            "[0,".to_string()
        };
        let count = |f: &dyn Fn(&ProbeHit) -> bool| band.iter().filter(|h| f(h)).count();
        println!(
            "  distance in {from:6} {edge:.2}]: {:3}   top-{}: {:3}   search: {:3}   \
             plausible: {:3}   mirrored: {:3}",
            band.len(),
            args.candidates,
            count(&|h| h.proposed(args.candidates)),
            count(&|h| h.ivf),
            count(&|h| h.plausible),
            count(&|h| h.mirrored),
        );
        below = edge;
    }
    let threshold = args.threshold as f32;
    println!(
        "  within the threshold in one order only: {}",
        hits.iter()
            .filter(|h| h.distance() <= threshold
                && h.alignment.distance.max(h.reverse_distance) > threshold)
            .count()
    );
    println!(
        "  not in the dataset: {}",
        probes.iter().filter(|p| p.best.is_none()).count()
    );
    println!();
}

fn write_probe_tsv(
    dir: &Path,
    prefix: &str,
    missed: &[String],
    probes: &[Probe],
    truth: &Truth,
    args: &Args,
) -> Result<()> {
    let mut out = String::from(
        "test\tjudgment\tbest_train\tdistance\treverse_distance\tmirrored\tcorrelation\tcolour\t\
         detail\tzoom\tdx\tdy\tplausible\trank\treverse_rank\tin_top_k\tproposed_by_search\n",
    );
    for (path, probe) in missed.iter().zip(probes) {
        let j = truth.in_train[path];
        match &probe.best {
            None => {
                let _ = writeln!(out, "{path}\t{j}\t-");
            }
            Some(h) => {
                let a = &h.alignment;
                let _ = writeln!(
                    out,
                    "{path}\t{j}\t{}\t{:.4}\t{:.4}\t{}\t{:.3}\t{:.3}\t{:.3}\t{:.2}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    h.train,
                    a.distance,
                    h.reverse_distance,
                    h.mirrored,
                    a.correlation,
                    a.colour,
                    a.detail,
                    a.zoom,
                    a.dx,
                    a.dy,
                    h.plausible,
                    h.rank,
                    h.reverse_rank,
                    h.proposed(args.candidates),
                    h.ivf,
                );
            }
        }
    }
    let file = dir.join(format!("{prefix}probe.tsv"));
    fs::write(&file, out).with_context(|| format!("writing {}", file.display()))
}

// ---------------------------------------------------------------------------------------
// Contact sheets

/// Scale of the 32x32 images on a sheet.
const ZOOM: u32 = 4;
const TILE: u32 = 32 * ZOOM;
const GAP: u32 = 4;
const MARGIN: u32 = 10;
const FONT_SCALE: u32 = 2;
const LINE: u32 = 6 * FONT_SCALE + 2;
const CAPTION_LINES: u32 = 3;
const CELLS_PER_SHEET: usize = 30;

/// One image of a cell with the caption lines under it; `path` None draws an empty tile.
struct Tile {
    path: Option<String>,
    caption: Vec<String>,
}

struct Cell {
    header: String,
    tiles: Vec<Tile>,
    /// What the `.txt` index says about the cell.
    index: String,
}

struct ImageCache {
    root: PathBuf,
    loaded: HashMap<String, Option<RgbImage>>,
}

impl ImageCache {
    fn new(root: &Path) -> ImageCache {
        ImageCache {
            root: root.to_path_buf(),
            loaded: HashMap::new(),
        }
    }

    fn get(&mut self, path: &str) -> Option<&RgbImage> {
        let root = &self.root;
        self.loaded
            .entry(path.to_string())
            .or_insert_with(|| image::open(root.join(path)).ok().map(|i| i.to_rgb8()))
            .as_ref()
    }
}

/// Splits a dataset path into two caption lines: the folder and the file.
fn path_lines(path: &str) -> Vec<String> {
    match path.rsplit_once('/') {
        Some((dir, file)) => vec![dir.to_string(), file.to_string()],
        None => vec![path.to_string()],
    }
}

fn write_sheets(dir: &Path, name: &str, cells: &[Cell], images: &mut ImageCache) -> Result<usize> {
    for (page, chunk) in cells.chunks(CELLS_PER_SHEET).enumerate() {
        let tiles = chunk.iter().map(|c| c.tiles.len()).max().unwrap_or(1) as u32;
        let cell_w = tiles * TILE + (tiles - 1) * GAP;
        let cell_h = LINE + TILE + GAP + CAPTION_LINES * LINE;
        let columns = (1600 / (cell_w + MARGIN)).clamp(1, chunk.len() as u32);
        let rows = (chunk.len() as u32).div_ceil(columns);
        let mut sheet = RgbImage::from_pixel(
            MARGIN + columns * (cell_w + MARGIN),
            MARGIN + rows * (cell_h + MARGIN),
            Rgb([255, 255, 255]),
        );
        let mut index = String::new();
        for (n, cell) in chunk.iter().enumerate() {
            let number = page * CELLS_PER_SHEET + n + 1;
            let x0 = MARGIN + (n as u32 % columns) * (cell_w + MARGIN);
            let y0 = MARGIN + (n as u32 / columns) * (cell_h + MARGIN);
            fill(&mut sheet, x0, y0, cell_w, cell_h, Rgb([232, 232, 232]));
            text(&mut sheet, x0, y0, &format!("#{number} {}", cell.header));
            for (t, tile) in cell.tiles.iter().enumerate() {
                let tx = x0 + t as u32 * (TILE + GAP);
                let ty = y0 + LINE;
                match tile.path.as_deref().and_then(|p| images.get(p)) {
                    Some(img) => blit(&mut sheet, img, tx, ty),
                    None => fill(&mut sheet, tx, ty, TILE, TILE, Rgb([160, 160, 160])),
                }
                for (l, line) in tile.caption.iter().take(CAPTION_LINES as usize).enumerate() {
                    text(&mut sheet, tx, ty + TILE + GAP + l as u32 * LINE, line);
                }
            }
            let _ = writeln!(index, "#{number}\t{}", cell.index);
        }
        let stem = format!("{name}-{}", page + 1);
        let png = dir.join(format!("{stem}.png"));
        sheet
            .save(&png)
            .with_context(|| format!("writing {}", png.display()))?;
        fs::write(dir.join(format!("{stem}.txt")), index)?;
    }
    Ok(cells.len())
}

fn write_missed_sheets(
    dir: &Path,
    prefix: &str,
    report: &Report,
    truth: &Truth,
    missed: &[String],
    probes: Option<&[Probe]>,
    images: &mut ImageCache,
) -> Result<usize> {
    let cells: Vec<Cell> = missed
        .iter()
        .enumerate()
        .map(|(n, path)| {
            let j = truth.in_train[path];
            let mut tiles = vec![Tile {
                path: Some(path.clone()),
                caption: path_lines(path),
            }];
            let mut index = format!("{path}\tj{j}");
            match report.links.get(path).and_then(|l| l.first()) {
                Some(l) => {
                    let mut caption = path_lines(&l.partner);
                    caption.push(format!("d={:.3} {}", l.distance, l.kind));
                    tiles.push(Tile {
                        path: Some(l.partner.clone()),
                        caption,
                    });
                    let _ = write!(
                        index,
                        "\treport: {} d={:.4} {}",
                        l.partner, l.distance, l.kind
                    );
                }
                None => {
                    tiles.push(Tile {
                        path: None,
                        caption: vec!["no link".to_string()],
                    });
                    index.push_str("\treport: no link");
                }
            }
            if let Some(probe) = probes.and_then(|p| p[n].best.as_ref()) {
                let a = &probe.alignment;
                let mut caption = path_lines(&probe.train);
                caption.push(format!(
                    "p d={:.3}{} r{}",
                    probe.distance(),
                    if probe.mirrored { " m" } else { "" },
                    probe.rank.min(probe.reverse_rank)
                ));
                tiles.push(Tile {
                    path: Some(probe.train.clone()),
                    caption,
                });
                let _ = write!(
                    index,
                    "\tprobe: {} d={:.4} reverse_d={:.4} mirrored={} zoom={:.2} shift=({},{}) plausible={} rank={} reverse_rank={} search={}",
                    probe.train,
                    a.distance,
                    probe.reverse_distance,
                    probe.mirrored,
                    a.zoom,
                    a.dx,
                    a.dy,
                    probe.plausible,
                    probe.rank,
                    probe.reverse_rank,
                    probe.ivf
                );
            }
            Cell {
                header: format!("j{j}"),
                tiles,
                index,
            }
        })
        .collect();
    write_sheets(dir, &format!("{prefix}missed"), &cells, images)
}

fn write_unannotated_sheets(
    dir: &Path,
    prefix: &str,
    report: &Report,
    truth: &Truth,
    args: &Args,
    images: &mut ImageCache,
) -> Result<usize> {
    let mut linked: Vec<(&String, &Link)> = report
        .links
        .keys()
        .filter(|p| is_test(p) && !truth.in_train.contains_key(p.as_str()))
        .filter_map(|p| Some((p, report.closest_train(p)?)))
        .collect();
    linked.sort_by(|a, b| a.0.cmp(b.0));
    // A seeded Fisher-Yates shuffle (splitmix64), stable across platforms and crate versions.
    let mut state = args.seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..linked.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        linked.swap(i, j);
    }
    linked.truncate(args.sample);
    linked.sort_by(|a, b| a.1.distance.total_cmp(&b.1.distance).then(a.0.cmp(b.0)));
    let cells: Vec<Cell> = linked
        .iter()
        .map(|(test, link)| {
            let mut caption = path_lines(&link.partner);
            caption.push(format!("d={:.3} {}", link.distance, link.kind));
            Cell {
                header: String::new(),
                tiles: vec![
                    Tile {
                        path: Some((*test).clone()),
                        caption: path_lines(test),
                    },
                    Tile {
                        path: Some(link.partner.clone()),
                        caption,
                    },
                ],
                index: format!(
                    "{test}\t{}\td={:.4}\t{}",
                    link.partner, link.distance, link.kind
                ),
            }
        })
        .collect();
    write_sheets(dir, &format!("{prefix}unannotated"), &cells, images)
}

fn fill(sheet: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Rgb<u8>) {
    for yy in y..(y + h).min(sheet.height()) {
        for xx in x..(x + w).min(sheet.width()) {
            sheet.put_pixel(xx, yy, colour);
        }
    }
}

/// Draws `img` scaled to a tile, nearest neighbour.
fn blit(sheet: &mut RgbImage, img: &RgbImage, x: u32, y: u32) {
    let (w, h) = (img.width().max(1), img.height().max(1));
    for ty in 0..TILE {
        for tx in 0..TILE {
            let p = *img.get_pixel(tx * w / TILE, ty * h / TILE);
            if x + tx < sheet.width() && y + ty < sheet.height() {
                sheet.put_pixel(x + tx, y + ty, p);
            }
        }
    }
}

/// A 3x5 bitmap font: lowercase letters draw as capitals; unknown characters as '?'.
fn glyph(c: char) -> [u8; 5] {
    let rows: &str = match c.to_ascii_lowercase() {
        '0' => "111101101101111",
        '1' => "010110010010111",
        '2' => "111001111100111",
        '3' => "111001111001111",
        '4' => "101101111001001",
        '5' => "111100111001111",
        '6' => "111100111101111",
        '7' => "111001001010010",
        '8' => "111101111101111",
        '9' => "111101111001111",
        'a' => "010101111101101",
        'b' => "110101110101110",
        'c' => "011100100100011",
        'd' => "110101101101110",
        'e' => "111100110100111",
        'f' => "111100110100100",
        'g' => "011100101101011",
        'h' => "101101111101101",
        'i' => "111010010010111",
        'j' => "001001001101010",
        'k' => "101101110101101",
        'l' => "100100100100111",
        'm' => "101111111101101",
        'n' => "110101101101101",
        'o' => "010101101101010",
        'p' => "110101110100100",
        'q' => "010101101110011",
        'r' => "110101110101101",
        's' => "011100010001110",
        't' => "111010010010010",
        'u' => "101101101101111",
        'v' => "101101101101010",
        'w' => "101101111111101",
        'x' => "101101010101101",
        'y' => "101101010010010",
        'z' => "111001010100111",
        '/' => "001001010100100",
        '.' => "000000000000010",
        '_' => "000000000000111",
        '-' => "000000111000000",
        ':' => "000010000010000",
        '=' => "000111000111000",
        '#' => "101111101111101",
        '(' => "010100100100010",
        ')' => "010001001001010",
        ',' => "000000000010100",
        '+' => "000010111010000",
        ' ' => "000000000000000",
        _ => "111001010000010",
    };
    let bits = rows.as_bytes();
    std::array::from_fn(|r| {
        (0..3).fold(0u8, |acc, c| (acc << 1) | u8::from(bits[r * 3 + c] == b'1'))
    })
}

fn text(sheet: &mut RgbImage, x: u32, y: u32, s: &str) {
    let advance = 4 * FONT_SCALE;
    for (i, c) in s.chars().enumerate() {
        let gx = x + i as u32 * advance;
        for (r, row) in glyph(c).iter().enumerate() {
            for col in 0..3u32 {
                if row >> (2 - col) & 1 == 1 {
                    fill(
                        sheet,
                        gx + col * FONT_SCALE,
                        y + 1 + r as u32 * FONT_SCALE,
                        FONT_SCALE,
                        FONT_SCALE,
                        Rgb([0, 0, 0]),
                    );
                }
            }
        }
    }
}
