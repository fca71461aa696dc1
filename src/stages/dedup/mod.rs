//! Stage 4, dedup: duplicate images, duplicates that cross splits (train/test leakage), and
//! duplicates whose labels disagree.
//!
//! Exact duplicates are a hash-map grouping, linear in the number of images: same decoded
//! pixels (the pixel hash; this also catches re-saves with other metadata and lossless
//! re-encodes), marked "same bytes" when the files are identical too.
//!
//! Near duplicates are found once per distinct picture in two steps: a cheap candidate search
//! over small descriptors ([`crate::neighbours`], about N·√N; each picture, its mirror image and its
//! centre crop are queries), then a careful alignment of each candidate
//! pair ([`near`]), which alone decides. Two tiers come out of it: a pair within
//! `dedup.near_threshold` is a copy (confident: it joins groups, counts as leakage and drives
//! the alerts); one beyond it but within `dedup.possible_threshold` is a possible copy, listed
//! apart for a person to review (the same object photographed again, or a copy edited more
//! than the check can tell from a look-alike), with what kept it out of the first tier.
//! Exact groups and copies then join into groups (connected
//! components); a pair whose images sit in different splits is leakage, a group whose images
//! carry different labels is a certain label error or a certain ambiguity.

pub mod incremental;
pub mod near;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::neighbours::{self, Method, Search};
use crate::progress::Progress;
use crate::stage::Stage;
use crate::stages::ingest::Ingested;

pub const STAGE: Stage = Stage::Dedup;
/// 3: symmetric check with crops, colour normalisation and robust detail; possible-copy tier.
/// 4: the near pairs are a pixel-level part reused across relabels (`SearchStats::reused`).
/// 5: the pixel part keeps candidate lists and descriptor sketches, by pixel hash, so that
/// added and removed pictures are searched incrementally ([`incremental`]).
pub const VERSION: u32 = 5;

/// Fixed so that reports are reproducible; only the k-means cells depend on it.
const SEARCH_SEED: u64 = 0x5eed_d00d;
/// Below this many pictures the candidate search is exact (and so is its incremental update).
const EXACT_BELOW: usize = 8_192;
/// The candidate search: exact below 8,192 pictures, k-means cells with six probes from there
/// on. Changing any of this changes which pairs are checked, and so the stage's `VERSION`.
const CANDIDATE_SEARCH: Search = Search {
    method: Method::Auto {
        exact_below: EXACT_BELOW,
        probes: 6,
        seed: SEARCH_SEED,
    },
    // The queries are the straight descriptors and then the mirrored ones; the picture's own
    // row is asked for and dropped below, as it always was.
    same_set: false,
};
/// Zoom of the centre crop searched for besides each picture (see `near::cropped_descriptor`):
/// the middle of the crops seen in CIFAR-10's copies (0.85-1.15 of the side).
const CROP_QUERY: f32 = 1.15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MatchKind {
    ExactBytes,
    ExactPixels,
    Near,
    /// A near duplicate of the other picture's mirror image.
    Mirrored,
}

impl MatchKind {
    pub fn name(self) -> &'static str {
        match self {
            MatchKind::ExactBytes => "exact_bytes",
            MatchKind::ExactPixels => "exact_pixels",
            MatchKind::Near => "near",
            MatchKind::Mirrored => "flipped",
        }
    }

    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            MatchKind::ExactBytes => "same bytes",
            MatchKind::ExactPixels => "same pixels",
            MatchKind::Near => "near duplicate",
            MatchKind::Mirrored => "mirror image",
        }
    }
}

/// Images with the same decoded pixels; `members` are image-table indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactGroup {
    pub kind: MatchKind,
    pub members: Vec<usize>,
}

/// Two images that are the same picture, with how far apart they are (0 for exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicatePair {
    pub a: usize,
    pub b: usize,
    pub kind: MatchKind,
    pub distance: f64,
}

/// What kept a possible copy out of the confident tier: the weakest of the check's
/// correlations at the best alignment (see [`near::align`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Borderline {
    /// The colours disagree more than a recolouring of the same picture would explain.
    Colour,
    /// The fine detail (edges, texture) agrees less than a copy's does.
    Detail,
    /// The grey levels themselves agree only loosely.
    Grey,
}

impl Borderline {
    pub fn name(self) -> &'static str {
        match self {
            Borderline::Colour => "colour",
            Borderline::Detail => "detail",
            Borderline::Grey => "grey",
        }
    }

    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Borderline::Colour => "colours differ",
            Borderline::Detail => "fine detail differs",
            Borderline::Grey => "shapes only roughly agree",
        }
    }

    fn of(alignment: &near::Alignment) -> Borderline {
        let detail_loss = alignment.correlation - alignment.detail_robust;
        let grey_loss = 1.0 - alignment.correlation;
        let colour_loss = 1.0 - alignment.colour_channels;
        if colour_loss >= grey_loss.max(detail_loss) {
            Borderline::Colour
        } else if detail_loss >= grey_loss {
            Borderline::Detail
        } else {
            Borderline::Grey
        }
    }
}

/// A pair within `dedup.possible_threshold` but beyond `dedup.near_threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PossiblePair {
    pub pair: DuplicatePair,
    pub why: Borderline,
}

/// A connected component of exact groups and near pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    pub members: Vec<usize>,
    /// Indices into [`DedupArtifact::exact_groups`].
    pub exact: Vec<usize>,
    /// Indices into [`DedupArtifact::near_pairs`].
    pub near: Vec<usize>,
}

/// What the near-duplicate search did, for the report's "how it was made".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchStats {
    /// Distinct pictures searched (exact duplicates are searched once).
    pub pictures: usize,
    /// Candidate pairs the careful check looked at.
    pub checked: usize,
    pub search_seconds: f64,
    pub check_seconds: f64,
    /// The pairs came from the last run (the pictures did not change): nothing was searched.
    #[serde(default)]
    pub reused: bool,
    /// Only the pictures added since the last run were searched (`pictures` of them); the
    /// pairs of the `pictures_kept` others were kept unless a changed list touched them.
    #[serde(default)]
    pub incremental: bool,
    #[serde(default)]
    pub pictures_kept: usize,
    /// Old candidate lists that lost an entry to a removed picture and were searched again.
    #[serde(default)]
    pub lists_refilled: usize,
}

/// How the near-duplicate pairs of a run came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Every picture searched.
    Full,
    /// The new pictures searched, the others' pairs kept.
    Incremental,
    /// Nothing searched: the pictures are the last run's.
    Reused,
}

impl SearchStats {
    pub fn mode(&self) -> SearchMode {
        if self.reused {
            SearchMode::Reused
        } else if self.incremental {
            SearchMode::Incremental
        } else {
            SearchMode::Full
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupArtifact {
    pub exact_groups: Vec<ExactGroup>,
    /// Near-duplicate pairs, closest first.
    pub near_pairs: Vec<DuplicatePair>,
    /// Connected components, biggest first.
    pub groups: Vec<DuplicateGroup>,
    /// Pairs whose images are in different splits (leakage), the later split's image (test)
    /// as `a`, closest first.
    pub cross_split: Vec<DuplicatePair>,
    /// Indices into `groups` of the groups whose members carry more than one label.
    pub conflicting_labels: Vec<usize>,
    /// Possible copies (the second tier), closest first; in no group and no other list.
    pub possible_pairs: Vec<PossiblePair>,
    pub search: SearchStats,
    /// The settings it was made with, for the report's description of the method.
    pub settings: DedupConfig,
}

/// The part of dedup that depends on pixels alone: near-duplicate pairs between distinct
/// pictures, as indices into the pictures sorted by pixel hash (`hashes`). Reused while the
/// set of pictures and the settings are the same, so a relabel or a moved file searches
/// nothing; updated for the new pictures alone when pictures were added or removed, from
/// the candidate lists and sketches it keeps (see [`incremental`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PixelPart {
    /// [`pixel_key`] of the inputs it was made from.
    pub key: u64,
    /// [`settings_key`] of the settings it was made with.
    pub settings: u64,
    /// The pictures' pixel hashes, ascending: picture `i` is `hashes[i]`.
    pub hashes: Vec<u128>,
    /// `a` and `b` are picture indices here, not image indices; `a < b`.
    pub pairs: Vec<DuplicatePair>,
    /// The possible copies, also between picture indices.
    pub possible: Vec<PossiblePair>,
    pub search: SearchStats,
    pub lists: incremental::CandidateLists,
    pub sketches: incremental::Sketches,
}

/// What dedup hands back: its artifact, and its pixel part when it was computed in this run
/// (`None`: the stored one is still right, or near duplicates are off).
pub struct Deduped {
    pub artifact: DedupArtifact,
    pub pixel: Option<PixelPart>,
}

/// What the pixel part depends on besides the pictures: how their thumbnails were made and
/// the settings of the near-duplicate search. A part made otherwise is of no use.
fn settings_key(ingested: &Ingested, config: &DedupConfig) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&VERSION.to_le_bytes());
    let decoded = &ingested.artifact.decoded_with;
    hasher.update(&u64::from(decoded.thumbnail_size).to_le_bytes());
    hasher.update(&config.near_threshold.to_le_bytes());
    hasher.update(&config.possible_threshold.to_le_bytes());
    hasher.update(&u64::from(config.max_shift).to_le_bytes());
    hasher.update(&[u8::from(config.mirrored)]);
    hasher.update(&(config.candidates as u64).to_le_bytes());
    hasher.digest()
}

/// What the pixel part depends on: [`settings_key`] and the distinct pictures (in pixel-hash
/// order).
fn pixel_key(settings: u64, hashes: &[u128]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&settings.to_le_bytes());
    for hash in hashes {
        hasher.update(&hash.to_le_bytes());
    }
    hasher.digest()
}

/// Runs the stage, reusing `previous` (the last run's pixel part) when it still applies.
pub fn run(
    ingested: &Ingested,
    config: &DedupConfig,
    previous: Option<PixelPart>,
    progress: &Progress,
) -> Deduped {
    let images = &ingested.artifact.images;
    let mut artifact = DedupArtifact {
        settings: config.clone(),
        ..DedupArtifact::default()
    };

    // One entry per distinct picture: its first image, and the exact group it heads.
    let mut by_pixels: BTreeMap<u128, Vec<usize>> = BTreeMap::new();
    for (index, record) in images.iter().enumerate() {
        by_pixels.entry(record.pixel_hash).or_default().push(index);
    }
    let hashes: Vec<u128> = by_pixels.keys().copied().collect();
    let pictures: Vec<Vec<usize>> = by_pixels.into_values().collect();
    let mut group_of_image: HashMap<usize, usize> = HashMap::new();
    if config.exact {
        for members in pictures.iter().filter(|m| m.len() > 1) {
            let same_bytes = members
                .iter()
                .all(|&i| images[i].content_hash == images[members[0]].content_hash);
            let kind = if same_bytes {
                MatchKind::ExactBytes
            } else {
                MatchKind::ExactPixels
            };
            for &m in members {
                group_of_image.insert(m, artifact.exact_groups.len());
            }
            artifact.exact_groups.push(ExactGroup {
                kind,
                members: members.clone(),
            });
        }
    }

    let mut fresh_part = None;
    if config.near {
        let heads: Vec<usize> = pictures.iter().map(|m| m[0]).collect();
        let settings = settings_key(ingested, config);
        let key = pixel_key(settings, &hashes);
        let previous = previous.filter(|p| p.settings == settings);
        let (part, fresh) = match previous {
            Some(mut part) if part.key == key => {
                part.search.reused = true;
                (part, false)
            }
            previous => {
                let updated = previous.and_then(|previous| {
                    incremental::update(ingested, &heads, &hashes, config, previous)
                });
                let mut part = updated.unwrap_or_else(|| {
                    near_duplicates(ingested, &heads, &hashes, settings, config, progress)
                });
                part.key = key;
                (part, true)
            }
        };
        // Picture indices to image indices: each picture's first image in the table.
        let to_images = |p: &DuplicatePair| DuplicatePair {
            a: heads[p.a],
            b: heads[p.b],
            ..p.clone()
        };
        let order = |x: &DuplicatePair, y: &DuplicatePair| {
            x.distance
                .total_cmp(&y.distance)
                .then_with(|| images[x.a].path.cmp(&images[y.a].path))
        };
        let mut pairs: Vec<DuplicatePair> = part.pairs.iter().map(to_images).collect();
        pairs.sort_by(order);
        let mut possible: Vec<PossiblePair> = part
            .possible
            .iter()
            .map(|p| PossiblePair {
                pair: to_images(&p.pair),
                why: p.why,
            })
            .collect();
        possible.sort_by(|x, y| order(&x.pair, &y.pair));
        artifact.near_pairs = pairs;
        artifact.possible_pairs = possible;
        artifact.search = part.search.clone();
        if fresh {
            fresh_part = Some(part);
        }
    }

    artifact.groups = components(images.len(), &artifact.exact_groups, &artifact.near_pairs);
    artifact.conflicting_labels = artifact
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            g.members
                .iter()
                .any(|&i| images[i].label != images[g.members[0]].label)
        })
        .map(|(gi, _)| gi)
        .collect();
    artifact.cross_split = cross_split(ingested, &artifact, &group_of_image);
    Deduped {
        artifact,
        pixel: fresh_part,
    }
}

/// The full search: near-duplicate pairs between distinct pictures (`heads` are their first
/// images, `hashes` their pixel hashes), as picture indices, each pair once, with what an
/// incremental update needs later.
fn near_duplicates(
    ingested: &Ingested,
    heads: &[usize],
    hashes: &[u128],
    settings: u64,
    config: &DedupConfig,
    progress: &Progress,
) -> PixelPart {
    let started = Instant::now();
    let images = &ingested.artifact.images;
    let bar = progress.bar(heads.len() as u64 * 2, "dedup");
    let pictures: Vec<near::Picture> = heads
        .par_iter()
        .map(|&i| {
            let r = &images[i];
            near::canonical(
                ingested.thumb_bytes(i),
                u32::from(r.thumb_width),
                u32::from(r.thumb_height),
            )
        })
        .collect();
    let n = pictures.len();
    let dims = near::DESCRIPTOR_DIMS;
    let orientations = if config.mirrored { 2 } else { 1 };
    // Queries: every picture, its mirror image (when asked) and its centre crop. A cropped
    // copy's descriptor is far from its original's, but close to the original's crop: 7 of
    // the 113 annotated CIFAR-10 copies in train were among none of their partner's
    // candidates without these queries, 2 with them (and the crops cost a third more
    // queries, not a second search).
    let mut queries = Array2::<f32>::zeros((n * (orientations + 1), dims));
    let (straight, rest) = queries
        .as_slice_mut()
        .unwrap_or_default()
        .split_at_mut(n * dims);
    let (mirrored, cropped) = rest.split_at_mut(n * dims * (orientations - 1));
    straight
        .par_chunks_mut(dims)
        .zip(&pictures)
        .for_each(|(out, picture)| near::descriptor(&picture.grey, false, out));
    mirrored
        .par_chunks_mut(dims)
        .zip(straight.par_chunks(dims))
        .for_each(|(out, from)| near::mirror_descriptor(from, out));
    cropped
        .par_chunks_mut(dims)
        .zip(&pictures)
        .for_each(|(out, picture)| near::cropped_descriptor(&picture.grey, CROP_QUERY, out));
    let base = queries.slice(ndarray::s![..n, ..]);
    let found = neighbours::search(
        queries.view(),
        base,
        config.candidates + 1,
        &CANDIDATE_SEARCH,
    );
    bar.inc(n as u64);

    // Each unordered pair once per orientation; the pair's own order doesn't matter because
    // mirroring either picture gives the same match. Crop queries pair their picture straight.
    let lists = incremental::CandidateLists::from_found(&found, n, orientations + 1);
    let candidates = lists.triples();
    let sketches = incremental::Sketches::of(
        queries.slice(ndarray::s![..n, ..]),
        queries.slice(ndarray::s![n * orientations.., ..]),
    );
    drop(queries);
    let search_seconds = started.elapsed().as_secs_f64();

    let checking = Instant::now();
    let (pairs, possible) = check(&|i| &pictures[i as usize], &candidates, config);
    bar.inc(n as u64);
    bar.finish_and_clear();
    PixelPart {
        key: 0,
        settings,
        hashes: hashes.to_vec(),
        pairs,
        possible,
        search: SearchStats {
            pictures: n,
            checked: candidates.len(),
            search_seconds,
            check_seconds: checking.elapsed().as_secs_f64(),
            ..SearchStats::default()
        },
        lists,
        sketches,
    }
}

/// The careful check of candidate triples (lower picture, higher picture, mirrored), sorted:
/// the copies and the possible copies among them, each pair once, in picture order. A pair's
/// result depends on its two pictures and on which of its triples are candidates, nothing else.
fn check<'a>(
    pictures: &(dyn Fn(u32) -> &'a near::Picture + Sync),
    candidates: &[(u32, u32, bool)],
    config: &DedupConfig,
) -> (Vec<DuplicatePair>, Vec<PossiblePair>) {
    let max_shift = config.max_shift as i32;
    let checked: Vec<(u32, u32, bool)> = candidates
        .par_iter()
        .copied()
        .filter(|&(i, j, mirrored)| near::plausible(pictures(i), pictures(j), mirrored, max_shift))
        .collect::<Vec<_>>();
    let horizon = config.possible_threshold.max(config.near_threshold);
    let checked: Vec<(u32, u32, bool, near::Alignment)> = checked
        .par_iter()
        .map(|&(i, j, mirrored)| {
            let alignment = near::align(pictures(i), pictures(j), mirrored, max_shift);
            (i, j, mirrored, alignment)
        })
        .filter(|c| f64::from(c.3.distance) <= horizon)
        .collect();

    // A symmetric picture matches its copy both ways; the straight match wins unless the
    // mirrored one is clearly closer.
    let mut best: BTreeMap<(u32, u32), (bool, near::Alignment)> = BTreeMap::new();
    for (i, j, mirrored, alignment) in checked {
        let entry = best.entry((i, j)).or_insert((mirrored, alignment));
        let (was_mirrored, was) = (entry.0, entry.1.distance);
        let distance = alignment.distance;
        let better = if mirrored == was_mirrored {
            distance < was
        } else if mirrored {
            distance + 0.05 < was
        } else {
            distance <= was + 0.05
        };
        if better {
            *entry = (mirrored, alignment);
        }
    }
    let mut pairs = Vec::new();
    let mut possible = Vec::new();
    for ((i, j), (mirrored, alignment)) in best {
        let pair = DuplicatePair {
            a: i as usize,
            b: j as usize,
            kind: if mirrored {
                MatchKind::Mirrored
            } else {
                MatchKind::Near
            },
            distance: (f64::from(alignment.distance) * 1e4).round() / 1e4,
        };
        if pair.distance <= config.near_threshold {
            pairs.push(pair);
        } else {
            possible.push(PossiblePair {
                pair,
                why: Borderline::of(&alignment),
            });
        }
    }
    (pairs, possible)
}

/// Connected components of exact groups and near pairs, biggest first.
fn components(images: usize, exact: &[ExactGroup], near: &[DuplicatePair]) -> Vec<DuplicateGroup> {
    let mut parent: Vec<usize> = (0..images).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let join = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (root(parent, a), root(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    for group in exact {
        for &m in &group.members[1..] {
            join(&mut parent, group.members[0], m);
        }
    }
    for pair in near {
        join(&mut parent, pair.a, pair.b);
    }
    let mut by_root: BTreeMap<usize, DuplicateGroup> = BTreeMap::new();
    let mut touched: Vec<usize> = exact
        .iter()
        .flat_map(|g| g.members.iter().copied())
        .collect();
    touched.extend(near.iter().flat_map(|p| [p.a, p.b]));
    touched.sort_unstable();
    touched.dedup();
    for image in touched {
        let r = root(&mut parent, image);
        by_root
            .entry(r)
            .or_insert_with(|| DuplicateGroup {
                members: Vec::new(),
                exact: Vec::new(),
                near: Vec::new(),
            })
            .members
            .push(image);
    }
    for (gi, group) in exact.iter().enumerate() {
        let r = root(&mut parent, group.members[0]);
        if let Some(g) = by_root.get_mut(&r) {
            g.exact.push(gi);
        }
    }
    for (pi, pair) in near.iter().enumerate() {
        let r = root(&mut parent, pair.a);
        if let Some(g) = by_root.get_mut(&r) {
            g.near.push(pi);
        }
    }
    let mut groups: Vec<DuplicateGroup> = by_root.into_values().collect();
    groups.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.members.cmp(&b.members))
    });
    groups
}

/// Every pair of copies whose images sit in different splits: exact copies at distance 0,
/// and near pairs spread over the exact copies of both sides.
fn cross_split(
    ingested: &Ingested,
    artifact: &DedupArtifact,
    group_of_image: &HashMap<usize, usize>,
) -> Vec<DuplicatePair> {
    let ingest = &ingested.artifact;
    let rank = |i: usize| {
        let split = ingest.images[i].split.as_ref();
        ingest.splits.iter().position(|s| Some(s) == split)
    };
    let copies = |i: usize| -> Vec<usize> {
        match group_of_image.get(&i) {
            Some(&g) => artifact.exact_groups[g].members.clone(),
            None => vec![i],
        }
    };
    let mut pairs: BTreeMap<(usize, usize), DuplicatePair> = BTreeMap::new();
    let mut add = |a: usize, b: usize, kind: MatchKind, distance: f64| {
        if rank(a) == rank(b) {
            return;
        }
        // The later split in the usual order (test) goes first: it is the one whose score
        // the copy inflates.
        let (a, b) = if rank(a) > rank(b) { (a, b) } else { (b, a) };
        let entry = pairs.entry((a, b)).or_insert(DuplicatePair {
            a,
            b,
            kind,
            distance,
        });
        if distance < entry.distance {
            entry.kind = kind;
            entry.distance = distance;
        }
    };
    for group in &artifact.exact_groups {
        for (x, &a) in group.members.iter().enumerate() {
            for &b in &group.members[x + 1..] {
                add(a, b, group.kind, 0.0);
            }
        }
    }
    for pair in &artifact.near_pairs {
        for a in copies(pair.a) {
            for b in copies(pair.b) {
                add(a, b, pair.kind, pair.distance);
            }
        }
    }
    let mut pairs: Vec<DuplicatePair> = pairs.into_values().collect();
    pairs.sort_by(|x, y| {
        x.distance
            .total_cmp(&y.distance)
            .then_with(|| ingest.images[x.a].path.cmp(&ingest.images[y.a].path))
    });
    pairs
}
