//! Dedup's incremental search: what a run keeps of its candidate search so that the next run,
//! when pictures were only added and removed (a changed file is one of each), searches the
//! new pictures alone; and that update.
//!
//! The state, per distinct picture in pixel-hash order (never image indices, which shift):
//! - its **candidate lists**, one per query (straight, mirrored, cropped): the `candidates + 1`
//!   base pictures the search gave it, with their similarities, as [`super::run`] used them;
//! - a **sketch** of its straight and cropped descriptors: one signed byte per dimension, a
//!   scale, and a bound on how far the sketch is from the descriptor (about 0.4 KB a picture,
//!   ~23 MB for CIFAR-10, against ~90 MB for the descriptors themselves, which take seconds
//!   to recompute for every picture).
//!
//! The invariant: the pairs are exactly the careful check of every candidate triple the lists
//! give (a picture, a list entry, straight or mirrored), as in a full search. An update keeps
//! it: it changes some lists, then rechecks exactly the pairs whose triples changed (a pair
//! whose entries were all pushed out of every list by closer new pictures is dropped, as a
//! full search would drop it), and keeps every other old pair as it was.
//!
//! The update: removed pictures leave every list; each new picture's queries are searched
//! against all pictures, and each new picture is offered to every old list it would enter
//! (the reverse direction). Both are exact: the sketches give every similarity to within
//! their bound, and the few pictures near a list's cut-off get their exact descriptors
//! recomputed from their thumbnails, so every similarity that decides is the full search's
//! own bits ([`neighbours::similarities`]), compared in its order (similarity, then the lower
//! picture).
//!
//! Where an update and a full search on the same pictures can differ:
//! - Below `EXACT_BELOW` pictures (the full search is exact there), they cannot: a list
//!   that lost an entry to a removed picture is searched again in full ("refilled"), so the
//!   lists, and so the pairs, are the full search's. The integration tests hold this.
//! - From `EXACT_BELOW` on, the full search is approximate (k-means cells, six probed) and the
//!   update is not: (1) a new picture's lists are exact, so it can get candidates a full
//!   search would miss in an unprobed cell; (2) old pictures keep the lists a search with
//!   cells fitted on the older data gave, where a full rerun refits the cells and finds
//!   slightly different lists; (3) a list that lost an entry to a removed picture is not
//!   refilled (a full search would take its next-best picture), it only takes new pictures
//!   that beat its last entry. bench/ measured the effect on CIFAR-10 (see the commit).
//!
//! Beyond a few percent of the pictures changed, or on any mismatch with the stored state, the
//! caller searches everything again ([`update`] returns `None`).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::near::{self, DESCRIPTOR_DIMS};
use super::{CROP_QUERY, DuplicatePair, EXACT_BELOW, PixelPart, PossiblePair, SearchStats};
use crate::config::DedupConfig;
use crate::neighbours::{self, Neighbours};
use crate::stages::ingest::Ingested;

/// Changes up to this many pictures (added plus removed) are always searched incrementally.
const SMALL_CHANGE: usize = 64;
/// Beyond `SMALL_CHANGE`, a change of more than one picture in this many is searched in full:
/// the update's cost grows with changed x all pictures, a full search's with N·√N.
const FULL_SEARCH_ONE_IN: usize = 25;
/// Old pictures handled together in the sketch pass.
const BLOCK: usize = 1_024;
/// Added to a sketch's bound: the rounding of the two dot products (192 terms of unit
/// vectors, each within ~1.2e-5 of the real product), with room to spare.
const SLACK: f32 = 1e-4;

/// Every picture's candidate lists: list `picture * queries + query`, queries in the order
/// straight, mirrored (when `dedup.mirrored`), cropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateLists {
    pub queries: usize,
    /// Slots per list: `dedup.candidates + 1` (a list may hold its own picture), capped at the
    /// number of pictures.
    pub slots: usize,
    /// Filled slots of each list.
    pub filled: Vec<u8>,
    /// `lists x slots`: picture indices, most similar first.
    pub index: Vec<u32>,
    pub similarity: Vec<f32>,
    /// The lists are an exact search's: the `slots` most similar pictures, ties to the lower.
    pub exact: bool,
}

impl CandidateLists {
    fn empty(pictures: usize, queries: usize, slots: usize, exact: bool) -> Self {
        let lists = pictures * queries;
        CandidateLists {
            queries,
            slots,
            filled: vec![0; lists],
            index: vec![0; lists * slots],
            similarity: vec![0.0; lists * slots],
            exact,
        }
    }

    fn lists(&self) -> usize {
        self.filled.len()
    }

    fn list(&self, l: usize) -> (&[u32], &[f32]) {
        let at = l * self.slots;
        let end = at + usize::from(self.filled[l]);
        (&self.index[at..end], &self.similarity[at..end])
    }

    fn set(&mut self, l: usize, entries: &[(u32, f32)]) {
        let entries = &entries[..entries.len().min(self.slots)];
        let at = l * self.slots;
        for (slot, &(j, sim)) in entries.iter().enumerate() {
            self.index[at + slot] = j;
            self.similarity[at + slot] = sim;
        }
        self.filled[l] = entries.len() as u8;
    }

    /// Whether list `l` gives candidates mirrored.
    fn mirrored(&self, l: usize) -> bool {
        self.queries == 3 && l % 3 == 1
    }

    fn contains(&self, l: usize, picture: u32) -> bool {
        self.list(l).0.contains(&picture)
    }

    /// The lists of a search whose queries were all straight descriptors, then (with three
    /// queries) all mirrored ones, then all cropped ones, against the `pictures`.
    pub(super) fn from_found(found: &Neighbours, pictures: usize, queries: usize) -> Self {
        let mut lists = CandidateLists::empty(pictures, queries, found.k(), pictures < EXACT_BELOW);
        let mut entries = Vec::new();
        for q in 0..found.rows() {
            let (i, kind) = (q % pictures, q / pictures);
            entries.clear();
            entries.extend(
                found
                    .of(q)
                    .iter()
                    .copied()
                    .zip(found.similarities(q).iter().copied()),
            );
            lists.set(i * queries + kind, &entries);
        }
        lists
    }

    /// Every candidate triple: (lower picture, higher picture, mirrored), each once, sorted.
    /// A list's own picture is no candidate; crop queries pair their picture straight.
    pub(super) fn triples(&self) -> Vec<(u32, u32, bool)> {
        let mut triples: Vec<(u32, u32, bool)> = (0..self.lists())
            .flat_map(|l| {
                let i = (l / self.queries) as u32;
                let mirrored = self.mirrored(l);
                self.list(l)
                    .0
                    .iter()
                    .filter(move |&&j| j != i)
                    .map(move |&j| (i.min(j), i.max(j), mirrored))
            })
            .collect();
        triples.sort_unstable();
        triples.dedup();
        triples
    }

    /// The triples of one pair (`a` < `b`) under these lists.
    fn triples_of(&self, a: u32, b: u32) -> Vec<(u32, u32, bool)> {
        let q = self.queries;
        let (la, lb) = (a as usize * q, b as usize * q);
        let straight = [0, q - 1]
            .iter()
            .any(|&k| self.contains(la + k, b) || self.contains(lb + k, a));
        let mirrored = q == 3 && (self.contains(la + 1, b) || self.contains(lb + 1, a));
        let mut out = Vec::new();
        if straight {
            out.push((a, b, false));
        }
        if mirrored {
            out.push((a, b, true));
        }
        out
    }
}

/// Sketches of every picture's straight and cropped descriptors (descriptor `2 * picture`
/// and `2 * picture + 1`): `value ≈ scale * code`, within `error` (Euclidean) of the real one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketches {
    /// `DESCRIPTOR_DIMS` signed bytes per descriptor.
    #[serde(with = "crate::cache::as_bytes")]
    pub codes: Vec<u8>,
    pub scales: Vec<f32>,
    pub errors: Vec<f32>,
}

impl Sketches {
    /// Sketches of `straight` and `cropped` descriptors, row `i` of each being picture `i`'s.
    pub(super) fn of(straight: ArrayView2<f32>, cropped: ArrayView2<f32>) -> Sketches {
        let n = straight.nrows();
        let mut sketches = Sketches {
            codes: vec![0; 2 * n * DESCRIPTOR_DIMS],
            scales: vec![0.0; 2 * n],
            errors: vec![0.0; 2 * n],
        };
        sketches
            .codes
            .par_chunks_mut(2 * DESCRIPTOR_DIMS)
            .zip(sketches.scales.par_chunks_mut(2))
            .zip(sketches.errors.par_chunks_mut(2))
            .enumerate()
            .for_each(|(i, ((codes, scales), errors))| {
                let (s, c) = codes.split_at_mut(DESCRIPTOR_DIMS);
                let straight_row = straight.row(i);
                let cropped_row = cropped.row(i);
                (scales[0], errors[0]) = quantize(straight_row.as_slice().unwrap_or(&[]), s);
                (scales[1], errors[1]) = quantize(cropped_row.as_slice().unwrap_or(&[]), c);
            });
        sketches
    }

    fn pictures(&self) -> usize {
        self.scales.len() / 2
    }

    fn push(&mut self, descriptor: &[f32]) {
        let at = self.codes.len();
        self.codes.resize(at + DESCRIPTOR_DIMS, 0);
        let (scale, error) = quantize(descriptor, &mut self.codes[at..]);
        self.scales.push(scale);
        self.errors.push(error);
    }

    fn copy_from(&mut self, other: &Sketches, d: usize) {
        self.codes
            .extend_from_slice(&other.codes[d * DESCRIPTOR_DIMS..(d + 1) * DESCRIPTOR_DIMS]);
        self.scales.push(other.scales[d]);
        self.errors.push(other.errors[d]);
    }

    /// Descriptor `d`'s sketch as floats, and its bound.
    fn decode(&self, d: usize, out: &mut [f32]) -> f32 {
        let scale = self.scales[d];
        for (o, &c) in out
            .iter_mut()
            .zip(&self.codes[d * DESCRIPTOR_DIMS..(d + 1) * DESCRIPTOR_DIMS])
        {
            *o = scale * f32::from(c as i8);
        }
        self.errors[d]
    }
}

/// Codes of `v` into `codes`; returns the scale and a bound on |v - sketch|.
fn quantize(v: &[f32], codes: &mut [u8]) -> (f32, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    // `f32::max` skips NaN, so `max` is a number; 0 for a zero descriptor.
    if max <= 0.0 || v.len() != codes.len() {
        codes.iter_mut().for_each(|c| *c = 0);
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        return (0.0, (norm * (1.0 + 1e-6)) as f32 + 1e-7);
    }
    let scale = max / 127.0;
    let mut error = 0f64;
    for (c, &x) in codes.iter_mut().zip(v) {
        let q = (x / scale).round().clamp(-127.0, 127.0) as i8;
        *c = q as u8;
        error += f64::from(x - scale * f32::from(q)).powi(2);
    }
    (scale, (error.sqrt() * (1.0 + 1e-6)) as f32 + 1e-7)
}

/// A picture's exact descriptors, recomputed from its thumbnail.
struct Exact {
    straight: Vec<f32>,
    mirrored: Vec<f32>,
    cropped: Option<Vec<f32>>,
}

impl Exact {
    fn of(ingested: &Ingested, head: usize, cropped: bool) -> Exact {
        let record = &ingested.artifact.images[head];
        let grey = near::canonical_grey(
            ingested.thumb_bytes(head),
            u32::from(record.thumb_width),
            u32::from(record.thumb_height),
        );
        let mut straight = vec![0f32; DESCRIPTOR_DIMS];
        near::descriptor(&grey, false, &mut straight);
        let mut mirrored = vec![0f32; DESCRIPTOR_DIMS];
        near::mirror_descriptor(&straight, &mut mirrored);
        let cropped = cropped.then(|| {
            let mut out = vec![0f32; DESCRIPTOR_DIMS];
            near::cropped_descriptor(&grey, CROP_QUERY, &mut out);
            out
        });
        Exact {
            straight,
            mirrored,
            cropped,
        }
    }

    /// The descriptor list `l`'s query asks with.
    fn query(&self, l: usize, queries: usize) -> &[f32] {
        match l % queries {
            0 => &self.straight,
            1 if queries == 3 => &self.mirrored,
            _ => self.cropped.as_deref().unwrap_or(&self.straight),
        }
    }
}

/// The exact descriptors of `pictures`, computed in parallel.
fn exact_descriptors(
    ingested: &Ingested,
    heads: &[usize],
    pictures: impl IntoIterator<Item = (u32, bool)>,
) -> HashMap<u32, Exact> {
    let mut wanted: HashMap<u32, bool> = HashMap::new();
    for (p, cropped) in pictures {
        *wanted.entry(p).or_default() |= cropped;
    }
    let wanted: Vec<(u32, bool)> = wanted.into_iter().collect();
    wanted
        .par_iter()
        .map(|&(p, cropped)| (p, Exact::of(ingested, heads[p as usize], cropped)))
        .collect()
}

fn rows(vectors: &[&[f32]]) -> Array2<f32> {
    let mut out = Array2::zeros((vectors.len(), DESCRIPTOR_DIMS));
    for (mut row, v) in out.rows_mut().into_iter().zip(vectors) {
        row.as_slice_mut()
            .unwrap_or_default()
            .copy_from_slice(&v[..DESCRIPTOR_DIMS]);
    }
    out
}

/// The full search's order of a list: most similar first, ties to the lower picture.
fn by_rank(x: &(u32, f32), y: &(u32, f32)) -> std::cmp::Ordering {
    y.1.total_cmp(&x.1).then(x.0.cmp(&y.0))
}

/// A forward candidate seen through a sketch: picture, bounds on its similarity.
type Seen = (u32, f32, f32);
/// What the sketch pass makes of one block of old pictures: per forward query what it saw,
/// and the (old list, new picture) offers.
type BlockSeen = (Vec<Vec<Seen>>, Vec<(usize, usize)>);

/// Searches the new pictures (when `previous` applies to `hashes`), returning the updated
/// part, or `None` when a full search is due (too large a change, other settings or a
/// damaged or older state).
pub(super) fn update(
    ingested: &Ingested,
    heads: &[usize],
    hashes: &[u128],
    config: &DedupConfig,
    previous: PixelPart,
) -> Option<PixelPart> {
    let started = Instant::now();
    let n = hashes.len();
    let old_n = previous.hashes.len();
    let queries = if config.mirrored { 3 } else { 2 };
    let old = &previous.lists;
    let exact = n < EXACT_BELOW;
    let consistent = old.queries == queries
        && old.filled.len() == old_n * queries
        && old.index.len() == old.filled.len() * old.slots
        && old.similarity.len() == old.index.len()
        && previous.sketches.pictures() == old_n
        && previous.sketches.codes.len() == 2 * old_n * DESCRIPTOR_DIMS
        && previous.sketches.errors.len() == 2 * old_n
        && old.exact == (old_n < EXACT_BELOW)
        && exact == old.exact
        && n > 0;
    if !consistent {
        return None;
    }

    // Old picture -> new picture, by a walk through both sorted hash lists.
    let mut old_to_new: Vec<Option<u32>> = vec![None; old_n];
    let mut new_to_old: Vec<Option<u32>> = vec![None; n];
    let (mut o, mut p) = (0, 0);
    while o < old_n && p < n {
        match previous.hashes[o].cmp(&hashes[p]) {
            std::cmp::Ordering::Less => o += 1,
            std::cmp::Ordering::Greater => p += 1,
            std::cmp::Ordering::Equal => {
                old_to_new[o] = Some(p as u32);
                new_to_old[p] = Some(o as u32);
                o += 1;
                p += 1;
            }
        }
    }
    let added: Vec<u32> = (0..n as u32)
        .filter(|&p| new_to_old[p as usize].is_none())
        .collect();
    let kept = n - added.len();
    let removed = old_n - kept;
    let changed = added.len() + removed;
    if changed > SMALL_CHANGE && changed * FULL_SEARCH_ONE_IN > n.max(old_n) {
        return None;
    }
    let slots = (config.candidates + 1).min(n);

    // The old lists in the new numbering, without the removed pictures. A list that lost an
    // entry is refilled by a search of its own when the lists are exact, unless it held every
    // picture (then nothing is missing from it).
    let mut lists = CandidateLists::empty(n, queries, slots, exact);
    let mut refill: Vec<usize> = Vec::new();
    let mut entries: Vec<(u32, f32)> = Vec::with_capacity(old.slots);
    for (old_i, new_i) in old_to_new.iter().enumerate() {
        let Some(new_i) = *new_i else { continue };
        for kind in 0..queries {
            let (index, similarity) = old.list(old_i * queries + kind);
            entries.clear();
            entries.extend(
                index
                    .iter()
                    .zip(similarity)
                    .filter_map(|(&j, &s)| old_to_new[j as usize].map(|j| (j, s))),
            );
            let l = new_i as usize * queries + kind;
            if exact && entries.len() < index.len() && index.len() < old_n {
                refill.push(l);
            }
            lists.set(l, &entries);
        }
    }
    let before = lists.clone();

    // The exact descriptors of the new pictures and of the refilled lists' pictures.
    let mut exact_of = exact_descriptors(
        ingested,
        heads,
        added
            .iter()
            .map(|&p| (p, true))
            .chain(refill.iter().map(|&l| ((l / queries) as u32, true))),
    );

    // Forward: every query of a new picture, and every refilled list, against all pictures.
    let forward: Vec<usize> = added
        .iter()
        .flat_map(|&p| (0..queries).map(move |k| p as usize * queries + k))
        .chain(refill.iter().copied())
        .collect();
    let forward_rows = rows(
        &forward
            .iter()
            .map(|&l| exact_of[&((l / queries) as u32)].query(l, queries))
            .collect::<Vec<_>>(),
    );
    let new_base = rows(
        &added
            .iter()
            .map(|p| exact_of[p].straight.as_slice())
            .collect::<Vec<_>>(),
    );
    let refilled: BTreeSet<usize> = refill.iter().copied().collect();
    let bar = |l: usize| -> Option<(u32, f32)> {
        let (index, similarity) = lists.list(l);
        // An exact list short of its slots holds every picture but the new ones: any new
        // picture enters. Elsewhere a list takes a new picture that beats its last entry.
        if exact && index.len() < slots {
            return None;
        }
        index.last().map(|&j| (j, similarity[similarity.len() - 1]))
    };

    // The sketch pass over the old pictures, a block at a time: for each forward query, the
    // pictures that may be among its best; for each old list, the new pictures that may enter.
    let olds: Vec<u32> = (0..n as u32)
        .filter(|&p| new_to_old[p as usize].is_some())
        .collect();
    let blocks: Vec<BlockSeen> = olds
        .par_chunks(BLOCK)
        .map(|chunk| {
            let b = chunk.len();
            let mut straight = Array2::<f32>::zeros((b, DESCRIPTOR_DIMS));
            let mut cropped = Array2::<f32>::zeros((b, DESCRIPTOR_DIMS));
            let mut straight_error = vec![0f32; b];
            let mut cropped_error = vec![0f32; b];
            let sketches = &previous.sketches;
            for (r, &p) in chunk.iter().enumerate() {
                let o = new_to_old[p as usize].unwrap_or_default() as usize;
                let row = straight.row_mut(r).into_slice().unwrap_or_default();
                straight_error[r] = sketches.decode(2 * o, row);
                cropped_error[r] = sketches.decode(
                    2 * o + 1,
                    cropped.row_mut(r).into_slice().unwrap_or_default(),
                );
            }
            // Forward rows against the block. The new pictures' own queries come first in
            // `forward` (row `x * queries + kind`), so these products also serve the reverse
            // direction: an old straight query against new picture x is the same product as
            // x's straight query against the old picture, and mirroring is an orthogonal
            // involution, so an old mirrored query against x equals x's mirrored query
            // against the old picture (up to rounding, far inside `SLACK`).
            let sims = neighbours::similarities(forward_rows.view(), straight.view());
            let mut seen: Vec<Vec<Seen>> = vec![Vec::new(); forward.len()];
            let mut lower = vec![0f32; b];
            for (f, row) in sims.rows().into_iter().enumerate() {
                for (r, &a) in row.iter().enumerate() {
                    lower[r] = a - straight_error[r] - SLACK;
                }
                // The `slots`-th best lower bound here is a floor for the whole search's.
                let floor = if b >= slots {
                    let mut sorted = lower.clone();
                    let (_, nth, _) =
                        sorted.select_nth_unstable_by(slots - 1, |x, y| y.total_cmp(x));
                    *nth
                } else {
                    f32::NEG_INFINITY
                };
                for (r, &a) in row.iter().enumerate() {
                    let upper = a + straight_error[r] + SLACK;
                    if upper >= floor {
                        seen[f].push((chunk[r], lower[r], upper));
                    }
                }
            }
            let mut offers: Vec<(usize, usize)> = Vec::new();
            let mut offer = |r: usize, kind: usize, x: usize, approx: f32, error: f32| {
                let l = chunk[r] as usize * queries + kind;
                if refilled.contains(&l) {
                    return;
                }
                let floor = bar(l).map_or(f32::NEG_INFINITY, |(_, s)| s);
                if approx + error + SLACK >= floor {
                    offers.push((l, x));
                }
            };
            let crop = queries - 1;
            for x in 0..added.len() {
                for kind in 0..crop {
                    let row = sims.row(x * queries + kind);
                    for (r, &a) in row.iter().enumerate() {
                        offer(r, kind, x, a, straight_error[r]);
                    }
                }
            }
            if !added.is_empty() {
                let cropped_sims = neighbours::similarities(cropped.view(), new_base.view());
                for (r, row) in cropped_sims.rows().into_iter().enumerate() {
                    for (x, &a) in row.iter().enumerate() {
                        offer(r, crop, x, a, cropped_error[r]);
                    }
                }
            }
            (seen, offers)
        })
        .collect();

    // Which old pictures' exact descriptors decide.
    let mut forward_seen: Vec<Vec<Seen>> = vec![Vec::new(); forward.len()];
    let mut offers: Vec<(usize, usize)> = Vec::new();
    for (seen, block_offers) in blocks {
        for (f, s) in seen.into_iter().enumerate() {
            forward_seen[f].extend(s);
        }
        offers.extend(block_offers);
    }
    for (f, seen) in forward_seen.iter_mut().enumerate() {
        let mut lower: Vec<f32> = seen.iter().map(|s| s.1).collect();
        // The new pictures are exact already: they join with their own similarity.
        let exact_new = neighbours::similarities(
            forward_rows.slice(ndarray::s![f..f + 1, ..]),
            new_base.view(),
        );
        for (x, &sim) in exact_new.iter().enumerate() {
            seen.push((added[x], sim, sim));
            lower.push(sim);
        }
        if lower.len() > slots {
            let (_, nth, _) = lower.select_nth_unstable_by(slots - 1, |x, y| y.total_cmp(x));
            let floor = *nth;
            seen.retain(|s| s.2 >= floor);
        }
    }
    let is_added = |p: u32| new_to_old[p as usize].is_none();
    let needed = forward_seen
        .iter()
        .flatten()
        .filter(|s| !is_added(s.0))
        .map(|s| (s.0, false))
        .chain(
            offers
                .iter()
                .map(|&(l, _)| ((l / queries) as u32, l % queries == queries - 1)),
        )
        // The new pictures' and the refilled lists' are there already, with their crops.
        .filter(|(p, _)| !exact_of.contains_key(p))
        .collect::<Vec<_>>();
    exact_of.extend(exact_descriptors(ingested, heads, needed));

    // Exact similarities, and the new lists.
    let forward_lists: Vec<Vec<(u32, f32)>> = forward
        .par_iter()
        .enumerate()
        .map(|(f, _)| {
            let seen = &forward_seen[f];
            let base = rows(
                &seen
                    .iter()
                    .map(|s| exact_of[&s.0].straight.as_slice())
                    .collect::<Vec<_>>(),
            );
            let sims = neighbours::similarities(
                forward_rows.slice(ndarray::s![f..f + 1, ..]),
                base.view(),
            );
            let mut list: Vec<(u32, f32)> =
                seen.iter().map(|s| s.0).zip(sims.iter().copied()).collect();
            list.sort_by(by_rank);
            list.truncate(slots);
            list
        })
        .collect();
    let mut offered: HashMap<usize, Vec<usize>> = HashMap::new();
    for (l, x) in offers {
        offered.entry(l).or_default().push(x);
    }
    let offered: Vec<(usize, Vec<usize>)> = offered.into_iter().collect();
    let reverse_lists: Vec<(usize, Vec<(u32, f32)>)> = offered
        .par_iter()
        .map(|(l, xs)| {
            let picture = (l / queries) as u32;
            let query = exact_of[&picture].query(*l, queries);
            let query = ndarray::ArrayView2::from_shape((1, DESCRIPTOR_DIMS), query)
                .unwrap_or_else(|_| forward_rows.slice(ndarray::s![0..0, ..]));
            let base = rows(
                &xs.iter()
                    .map(|&x| exact_of[&added[x]].straight.as_slice())
                    .collect::<Vec<_>>(),
            );
            let sims = neighbours::similarities(query, base.view());
            let (index, similarity) = lists.list(*l);
            let mut list: Vec<(u32, f32)> = index
                .iter()
                .copied()
                .zip(similarity.iter().copied())
                .collect();
            list.extend(xs.iter().map(|&x| added[x]).zip(sims.iter().copied()));
            list.sort_by(by_rank);
            list.truncate(slots);
            (*l, list)
        })
        .collect();
    for (f, list) in forward.iter().zip(&forward_lists) {
        lists.set(*f, list);
    }
    for (l, list) in &reverse_lists {
        lists.set(*l, list);
    }
    let search_seconds = started.elapsed().as_secs_f64();

    // The pairs whose triples may have changed: one side's list gained or lost the other.
    let checking = Instant::now();
    let mut affected: BTreeSet<(u32, u32)> = BTreeSet::new();
    let changed_lists = forward
        .iter()
        .copied()
        .chain(reverse_lists.iter().map(|r| r.0));
    for l in changed_lists {
        let i = (l / queries) as u32;
        let (was, _) = before.list(l);
        let (is, _) = lists.list(l);
        for &j in was
            .iter()
            .filter(|j| !is.contains(j))
            .chain(is.iter().filter(|j| !was.contains(j)))
        {
            if j != i {
                affected.insert((i.min(j), i.max(j)));
            }
        }
    }
    let triples: Vec<(u32, u32, bool)> = affected
        .iter()
        .flat_map(|&(a, b)| lists.triples_of(a, b))
        .collect();
    let involved: BTreeSet<u32> = triples.iter().flat_map(|t| [t.0, t.1]).collect();
    let pictures: HashMap<u32, near::Picture> = involved
        .par_iter()
        .map(|&p| {
            let head = heads[p as usize];
            let record = &ingested.artifact.images[head];
            (
                p,
                near::canonical(
                    ingested.thumb_bytes(head),
                    u32::from(record.thumb_width),
                    u32::from(record.thumb_height),
                ),
            )
        })
        .collect();
    let picture = |p: u32| &pictures[&p];
    let (checked_pairs, checked_possible) = super::check(&picture, &triples, config);

    // Old pairs between kept pictures that no changed list touched stay as they were.
    let renumber = |p: &DuplicatePair| -> Option<DuplicatePair> {
        let a = old_to_new.get(p.a).copied().flatten()?;
        let b = old_to_new.get(p.b).copied().flatten()?;
        (!affected.contains(&(a.min(b), a.max(b)))).then(|| DuplicatePair {
            a: a as usize,
            b: b as usize,
            ..p.clone()
        })
    };
    let mut pairs: Vec<DuplicatePair> = previous.pairs.iter().filter_map(renumber).collect();
    pairs.extend(checked_pairs);
    pairs.sort_by_key(|p| (p.a, p.b));
    let mut possible: Vec<PossiblePair> = previous
        .possible
        .iter()
        .filter_map(|p| renumber(&p.pair).map(|pair| PossiblePair { pair, why: p.why }))
        .collect();
    possible.extend(checked_possible);
    possible.sort_by_key(|p| (p.pair.a, p.pair.b));

    let mut sketches = Sketches::default();
    for (p, old_p) in new_to_old.iter().enumerate() {
        match old_p {
            Some(o) => {
                sketches.copy_from(&previous.sketches, 2 * *o as usize);
                sketches.copy_from(&previous.sketches, 2 * *o as usize + 1);
            }
            None => {
                let e = &exact_of[&(p as u32)];
                sketches.push(&e.straight);
                sketches.push(e.cropped.as_deref().unwrap_or(&e.straight));
            }
        }
    }
    Some(PixelPart {
        key: 0,
        settings: previous.settings,
        hashes: hashes.to_vec(),
        pairs,
        possible,
        search: SearchStats {
            pictures: added.len(),
            checked: triples.len(),
            search_seconds,
            check_seconds: checking.elapsed().as_secs_f64(),
            reused: false,
            incremental: true,
            pictures_kept: kept,
            lists_refilled: refill.len(),
        },
        lists,
        sketches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sketch_is_within_its_bound() {
        let v: Vec<f32> = (0..DESCRIPTOR_DIMS)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0)
            .collect();
        let mut codes = vec![0u8; DESCRIPTOR_DIMS];
        let (scale, error) = quantize(&v, &mut codes);
        let distance = v
            .iter()
            .zip(&codes)
            .map(|(x, &c)| (x - scale * f32::from(c as i8)).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(distance <= error, "{distance} > {error}");
        assert!(error < 0.01, "a loose sketch: {error}");
        let zero = vec![0f32; DESCRIPTOR_DIMS];
        assert_eq!(quantize(&zero, &mut codes).0, 0.0);
    }

    #[test]
    fn sketches_survive_postcard() {
        let sketches = Sketches {
            codes: vec![1, 2, 255],
            scales: vec![0.5],
            errors: vec![0.25],
        };
        let bytes = postcard::to_stdvec(&sketches).unwrap();
        assert_eq!(postcard::from_bytes::<Sketches>(&bytes).unwrap(), sketches);
    }
}
