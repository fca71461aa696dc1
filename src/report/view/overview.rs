//! The Overview section (and summary.md's head): the dataset's key facts and the alerts.
//!
//! Alerts are ordered by seriousness, warnings first (leakage, label conflicts, unreadable
//! files, imbalance, greyscale), then the informational ones; summary.md lists them in the
//! same order. An alert names the section that shows its evidence; it never carries markup.

use serde::Serialize;

use crate::text::{plural, thousands};

use super::files::FilesView;
use super::{Alert, Fact, RenderInput, duplicates, fact};

#[derive(Debug, Serialize)]
pub struct OverviewView {
    pub facts: Vec<Fact>,
    pub alerts: Vec<Alert>,
}

/// `files` is the Unreadable and skipped files section, whose counts the overview repeats.
pub fn build(input: &RenderInput, files: &FilesView) -> OverviewView {
    OverviewView {
        facts: facts(input, files),
        alerts: alerts(input, files.unreadable.len(), files.skipped.len()),
    }
}

fn facts(input: &RenderInput, files: &FilesView) -> Vec<Fact> {
    let ingest = &input.ingested.artifact;
    let stats = input.statistics;
    let mut facts = vec![
        fact("images analysed", thousands(ingest.images.len() as u64)),
        fact("classes", thousands(ingest.classes.len() as u64)),
    ];
    if !ingest.splits.is_empty() {
        let splits: Vec<String> = ingest
            .splits
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s,
                    thousands(stats.split_counts.get(s).copied().unwrap_or(0) as u64)
                )
            })
            .collect();
        facts.push(fact("splits", splits.join(", ")));
    }
    facts.push(fact(
        "formats",
        stats
            .formats
            .iter()
            .map(|(f, n)| format!("{f} {}", thousands(*n as u64)))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    facts.push(fact("bytes on disk", human_bytes(stats.total_bytes)));
    facts.push(fact(
        "unreadable files",
        thousands(files.unreadable.len() as u64),
    ));
    facts.push(fact("skipped files", thousands(files.skipped.len() as u64)));
    if input.review_file.is_some() {
        facts.push(fact(
            "reviewed",
            reviewed_fact(&super::super::review::counts(input)),
        ));
    }
    facts
}

/// "12 near-duplicate pairs, 3 of them reviewed as not duplicates; 40 label-issue
/// candidates, 2 of them reviewed as correct".
fn reviewed_fact(counts: &super::super::review::ReviewJson) -> String {
    format!(
        "{} {}, {} of them reviewed as not duplicates; {} label-issue {}, {} of them \
         reviewed as correctly labelled",
        thousands(counts.duplicate_pairs as u64),
        plural(
            counts.duplicate_pairs as u64,
            "duplicate pair",
            "duplicate pairs"
        ),
        thousands(counts.duplicate_pairs_reviewed as u64),
        thousands(counts.label_issues as u64),
        plural(counts.label_issues as u64, "candidate", "candidates"),
        thousands(counts.label_issues_reviewed as u64),
    )
}

fn alerts(input: &RenderInput, unreadable: usize, skipped: usize) -> Vec<Alert> {
    let mut alerts = Vec::new();
    alerts.extend(duplicates::alerts(input));
    if unreadable > 0 {
        alerts.push(Alert {
            level: "warn",
            text: format!(
                "{} {} could not be decoded (listed under Unreadable files)",
                thousands(unreadable as u64),
                plural(unreadable as u64, "file", "files")
            ),
        });
    }
    if let Some(imbalance) = &input.statistics.imbalance
        && imbalance.alert
    {
        let ratio = if imbalance.ratio.is_finite() {
            format!("{:.1}x", imbalance.ratio)
        } else {
            "infinitely".into()
        };
        alerts.push(Alert {
            level: "warn",
            text: format!(
                "class `{}` has {} fewer images than `{}` ({} vs {})",
                imbalance.smallest,
                ratio,
                imbalance.largest,
                thousands(imbalance.smallest_count as u64),
                thousands(imbalance.largest_count as u64)
            ),
        });
    }
    let greyscale = input.statistics.greyscale_in_colour.len();
    if greyscale > 0 {
        alerts.push(Alert {
            level: "warn",
            text: format!(
                "{} greyscale {} in a colour dataset (see Image properties)",
                thousands(greyscale as u64),
                plural(greyscale as u64, "image", "images")
            ),
        });
    }
    alerts.extend(duplicates::info_alert(input));
    if skipped > 0 {
        alerts.push(Alert {
            level: "info",
            text: format!(
                "{} {} skipped (not images, hidden or outside class folders)",
                thousands(skipped as u64),
                plural(skipped as u64, "file", "files")
            ),
        });
    }
    alerts
}

fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
