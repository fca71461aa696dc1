//! The Unreadable and skipped files section: every unit ingest did not analyse, with its
//! reason, in ingest's order.
//!
//! Unreadable files (meant to be images, could not be decoded) are findings; skipped ones
//! (not images, hidden, outside class folders) are only listed. Both lists are complete: the
//! overview counts them and summary.md quotes the first unreadable ones.

use serde::Serialize;

use crate::stages::ingest::{IngestArtifact, RejectKind};

#[derive(Debug, Serialize)]
pub struct FilesView {
    pub unreadable: Vec<Note>,
    /// Skipped by discovery first, then the files that turned out not to be images.
    pub skipped: Vec<Note>,
}

#[derive(Debug, Serialize)]
pub struct Note {
    pub path: String,
    pub reason: String,
}

pub fn build(ingest: &IngestArtifact) -> FilesView {
    let rejected = |kind: RejectKind| {
        ingest
            .rejected
            .iter()
            .filter(move |r| r.kind == kind)
            .map(|r| note(&r.path, &r.reason))
    };
    FilesView {
        unreadable: rejected(RejectKind::Unreadable).collect(),
        skipped: ingest
            .skipped
            .iter()
            .map(|n| note(&n.path, &n.reason))
            .chain(rejected(RejectKind::NotImage))
            .collect(),
    }
}

fn note(path: &str, reason: &str) -> Note {
    Note {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}
