//! Which findings a person already reviewed, read off the review file's judgements
//! ([`crate::review::reviewfile`]), and the report's id that the browser keys its stored
//! decisions by.
//!
//! A duplicate pair is reviewed when its two pictures' content hashes were judged "not a
//! duplicate"; a label issue when its picture's content hash was judged correct *with the
//! label it has now* (relabelling it makes it a new question). Reviewed findings stay in
//! report.json and the page, marked `reviewed`, and are counted apart; the gate counts only
//! the open ones.

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use super::view::RenderInput;
use crate::review::hash_hex;
use crate::stages::ingest::IngestArtifact;

/// report.json's `review`: what the review file settled in this report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReviewJson {
    /// The review file's name in the dataset root, when there is one.
    pub file: Option<String>,
    /// Duplicate pairs listed (copies and possible copies, each pair once), and how many of
    /// them were reviewed as not duplicates.
    pub duplicate_pairs: usize,
    pub duplicate_pairs_reviewed: usize,
    /// Label-issue candidates listed, and how many were reviewed as correctly labelled.
    pub label_issues: usize,
    pub label_issues_reviewed: usize,
}

pub fn pair_reviewed(input: &RenderInput, a: usize, b: usize) -> bool {
    let images = &input.ingested.artifact.images;
    match (images.get(a), images.get(b)) {
        (Some(a), Some(b)) => input
            .review
            .is_not_duplicate(a.content_hash, b.content_hash),
        _ => false,
    }
}

pub fn label_issue_reviewed(input: &RenderInput, image: usize) -> bool {
    input
        .ingested
        .artifact
        .images
        .get(image)
        .is_some_and(|r| input.review.is_label_correct(r.content_hash, &r.label))
}

pub fn content_hash(input: &RenderInput, image: usize) -> String {
    input
        .ingested
        .artifact
        .images
        .get(image)
        .map(|r| hash_hex(r.content_hash))
        .unwrap_or_default()
}

/// The counts of report.json's `review` block (and the overview's fact).
pub fn counts(input: &RenderInput) -> ReviewJson {
    let dedup = input.dedup;
    let mut pairs: Vec<(usize, usize)> = dedup
        .near_pairs
        .iter()
        .chain(dedup.cross_split.iter())
        .chain(dedup.possible_pairs.iter().map(|p| &p.pair))
        .map(|p| (p.a.min(p.b), p.a.max(p.b)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let issues = &input.embed.label_issues;
    ReviewJson {
        file: input.review_file.clone(),
        duplicate_pairs: pairs.len(),
        duplicate_pairs_reviewed: pairs
            .iter()
            .filter(|&&(a, b)| pair_reviewed(input, a, b))
            .count(),
        label_issues: issues.len(),
        label_issues_reviewed: issues
            .iter()
            .filter(|f| label_issue_reviewed(input, f.image))
            .count(),
    }
}

/// A stable id of the dataset version a report is about: a hash of every image's path and
/// content hash (in the image table's order, sorted by path), 16 hex digits. Two reports of
/// the same files share it; any added, removed, moved or changed file gives another.
pub fn report_id(ingest: &IngestArtifact) -> String {
    let mut hasher = Xxh3::new();
    for record in &ingest.images {
        hasher.update(record.path.as_bytes());
        hasher.update(&[0]);
        hasher.update(&record.content_hash.to_le_bytes());
    }
    format!("{:016x}", hasher.digest())
}
