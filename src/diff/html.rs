//! diff.html: the diff as one self-contained page, in the report's look (its style.css) and
//! under its rules: Tera's auto-escaping stays on, so every file, folder and class name is
//! escaped; thumbnails are inline PNG data URIs; nothing refers to the network.
//!
//! The view structs here are all the template sees. Each category shows its first
//! [`SHOWN`] entries, old | new side by side; diff.json lists every one.

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Side;
use super::json::{DiffJson, ImageRef, LabelledPath, Move};
use crate::gate::GateOutcome;
use crate::report::charts;
use crate::report::view::png_data_uri;

/// The template, compiled in.
pub const TEMPLATE: &str = include_str!("../../templates/diff.html.tera");

/// Entries shown per category or list of findings.
const SHOWN: usize = 40;
/// Pictures shown per group of copies.
const GROUP_SHOWN: usize = 6;

#[derive(Debug, Serialize)]
struct DiffView {
    title: String,
    tool_version: String,
    facts: Vec<Fact>,
    gate: GateOutcome,
    categories: Vec<Category>,
    classes: Vec<ClassRow>,
    splits: Vec<Row>,
    normalisation: Vec<Row>,
    properties: Vec<PropertyCard>,
    findings: Vec<FindingSection>,
}

#[derive(Debug, Serialize)]
struct Fact {
    label: &'static str,
    value: String,
}

/// One category of image changes: cards of old | new.
#[derive(Debug, Serialize)]
struct Category {
    id: &'static str,
    title: &'static str,
    hint: &'static str,
    total: usize,
    cards: Vec<Card>,
    more: usize,
}

#[derive(Debug, Serialize)]
struct Card {
    old: Option<Thumb>,
    new: Option<Thumb>,
}

#[derive(Debug, Serialize)]
struct Thumb {
    src: String,
    path: String,
    /// "split · label", or the label.
    place: String,
}

#[derive(Debug, Serialize)]
struct ClassRow {
    name: String,
    old: usize,
    new: usize,
    delta: String,
    added: usize,
    removed: usize,
    changed: usize,
    moved: usize,
    relabelled_in: usize,
    relabelled_out: usize,
}

/// A row of before / after values, formatted.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    old: String,
    new: String,
    changed: bool,
}

/// One image property: its spread on each side and both histograms overlaid.
#[derive(Debug, Serialize)]
struct PropertyCard {
    row: Row,
    /// "value" or "log10(1 + value)": what the chart's axis shows.
    scale: &'static str,
    /// Inline SVG from `charts::overlaid_distribution` (numbers only), or empty.
    svg: String,
}

#[derive(Debug, Serialize)]
struct FindingSection {
    title: &'static str,
    introduced_total: usize,
    resolved_total: usize,
    resolved_word: &'static str,
    introduced: Vec<Finding>,
    resolved: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct Finding {
    thumbs: Vec<Thumb>,
    note: String,
}

/// Thumbnails of one side, by path.
struct Thumbs<'a> {
    side: &'a Side<'a>,
    by_path: HashMap<&'a str, usize>,
}

impl<'a> Thumbs<'a> {
    fn new(side: &'a Side<'a>) -> Thumbs<'a> {
        let by_path = side
            .ingested
            .artifact
            .images
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.as_str(), i))
            .collect();
        Thumbs { side, by_path }
    }

    /// The thumbnail of `path` with its caption; an image without one (an unreadable file)
    /// gets an empty `src` and the template shows its path alone.
    fn of(&self, path: &str, place: String) -> Thumb {
        let src = self
            .by_path
            .get(path)
            .map(|&i| png_data_uri(&self.side.ingested.thumb(i)))
            .unwrap_or_default();
        Thumb {
            src,
            path: path.to_string(),
            place,
        }
    }

    fn image(&self, image: &ImageRef) -> Thumb {
        self.of(&image.path, place(image))
    }

    fn labelled(&self, member: &LabelledPath) -> Thumb {
        self.of(&member.path, member.label.clone())
    }
}

fn place(image: &ImageRef) -> String {
    match &image.split {
        Some(split) => format!("{split} · {}", image.label),
        None => image.label.clone(),
    }
}

fn category<T>(
    id: &'static str,
    title: &'static str,
    hint: &'static str,
    items: &[T],
    card: impl Fn(&T) -> Card,
) -> Category {
    Category {
        id,
        title,
        hint,
        total: items.len(),
        cards: items.iter().take(SHOWN).map(card).collect(),
        more: items.len().saturating_sub(SHOWN),
    }
}

fn rgb(v: [f64; 3]) -> String {
    format!("{:.4}, {:.4}, {:.4}", v[0], v[1], v[2])
}

fn row(name: impl Into<String>, old: String, new: String) -> Row {
    Row {
        name: name.into(),
        changed: old != new,
        old,
        new,
    }
}

fn group_finding(thumbs: &Thumbs, members: &[LabelledPath]) -> Finding {
    let more = members.len().saturating_sub(GROUP_SHOWN);
    Finding {
        thumbs: members
            .iter()
            .take(GROUP_SHOWN)
            .map(|m| thumbs.labelled(m))
            .collect(),
        note: if more > 0 {
            format!("{} pictures, {more} not shown", members.len())
        } else {
            format!("{} pictures", members.len())
        },
    }
}

fn build_view(diff: &DiffJson, old: &Side, new: &Side) -> DiffView {
    let (old_thumbs, new_thumbs) = (Thumbs::new(old), Thumbs::new(new));
    let both = |m: &Move| Card {
        old: Some(old_thumbs.image(&m.old)),
        new: Some(new_thumbs.image(&m.new)),
    };
    let images = &diff.images;
    let categories = vec![
        category(
            "added",
            "Added",
            "in the new version only",
            &images.added,
            |i| Card {
                old: None,
                new: Some(new_thumbs.image(i)),
            },
        ),
        category(
            "removed",
            "Removed",
            "in the old version only",
            &images.removed,
            |i| Card {
                old: Some(old_thumbs.image(i)),
                new: None,
            },
        ),
        category(
            "changed",
            "Changed",
            "same path, new pixels",
            &images.changed,
            both,
        ),
        category(
            "relabelled",
            "Relabelled",
            "same pixels, another class or split",
            &images.relabelled,
            both,
        ),
        category(
            "moved",
            "Moved",
            "same pixels, new path, same class",
            &images.moved,
            both,
        ),
    ];

    let classes = diff
        .classes
        .iter()
        .map(|(name, c)| ClassRow {
            name: name.clone(),
            old: c.old,
            new: c.new,
            delta: match c.new as i64 - c.old as i64 {
                0 => "0".to_string(),
                d => format!("{d:+}"),
            },
            added: c.added,
            removed: c.removed,
            changed: c.changed,
            moved: c.moved,
            relabelled_in: c.relabelled_in,
            relabelled_out: c.relabelled_out,
        })
        .collect();
    let splits = diff
        .splits
        .iter()
        .map(|(name, v)| {
            let name = if name.is_empty() { "(no split)" } else { name };
            row(name, v.old.to_string(), v.new.to_string())
        })
        .collect();
    let stats = &diff.statistics;
    let mut normalisation = vec![
        row(
            "mean",
            rgb(stats.overall.old.mean),
            rgb(stats.overall.new.mean),
        ),
        row(
            "std",
            rgb(stats.overall.old.std),
            rgb(stats.overall.new.std),
        ),
    ];
    let missing = || "—".to_string();
    for (split, v) in &stats.per_split {
        if split.is_empty() {
            continue;
        }
        normalisation.push(row(
            format!("{split} mean"),
            v.old.map(|s| rgb(s.mean)).unwrap_or_else(missing),
            v.new.map(|s| rgb(s.mean)).unwrap_or_else(missing),
        ));
        normalisation.push(row(
            format!("{split} std"),
            v.old.map(|s| rgb(s.std)).unwrap_or_else(missing),
            v.new.map(|s| rgb(s.std)).unwrap_or_else(missing),
        ));
    }
    let spread = |s: &Option<super::json::Spread>| match s {
        Some(s) => format!("{:.3} ({:.3} – {:.3})", s.median, s.p10, s.p90),
        None => missing(),
    };
    let properties = diff
        .properties
        .iter()
        .map(|p| PropertyCard {
            row: row(p.property.clone(), spread(&p.old), spread(&p.new)),
            scale: p.histogram.as_ref().map_or("value", |h| h.scale),
            svg: p.histogram.as_ref().map_or_else(String::new, |h| {
                charts::overlaid_distribution(&h.old, &h.new, h.min, h.max)
            }),
        })
        .collect();

    let groups = |title, changes: &super::json::FindingChanges<Vec<LabelledPath>>| FindingSection {
        title,
        introduced_total: changes.introduced.len(),
        resolved_total: changes.resolved.len(),
        resolved_word: "resolved",
        introduced: changes
            .introduced
            .iter()
            .take(SHOWN)
            .map(|g| group_finding(&new_thumbs, g))
            .collect(),
        resolved: changes
            .resolved
            .iter()
            .take(SHOWN)
            .map(|g| group_finding(&old_thumbs, g))
            .collect(),
    };
    let pair = |thumbs: &Thumbs, p: &super::json::PairJson| Finding {
        thumbs: vec![
            thumbs.of(&p.a, String::new()),
            thumbs.of(&p.b, String::new()),
        ],
        note: format!("{} (distance {:.3})", p.kind, p.distance),
    };
    let issue = |thumbs: &Thumbs, i: &super::json::IssueJson| Finding {
        thumbs: vec![thumbs.of(&i.path, String::new())],
        note: format!("{} → {} (score {:.3})", i.given, i.suggested, i.score),
    };
    let unreadable = |r: &super::json::PathReason| Finding {
        thumbs: vec![Thumb {
            src: String::new(),
            path: r.path.clone(),
            place: String::new(),
        }],
        note: r.reason.clone(),
    };
    let findings = vec![
        groups("Duplicate groups", &diff.duplicates),
        FindingSection {
            title: "Copies across splits (leakage)",
            introduced_total: diff.leakage.introduced.len(),
            resolved_total: diff.leakage.resolved.len(),
            resolved_word: "resolved",
            introduced: diff
                .leakage
                .introduced
                .iter()
                .take(SHOWN)
                .map(|p| pair(&new_thumbs, p))
                .collect(),
            resolved: diff
                .leakage
                .resolved
                .iter()
                .take(SHOWN)
                .map(|p| pair(&old_thumbs, p))
                .collect(),
        },
        groups("Conflicting labels", &diff.conflicting_labels),
        FindingSection {
            title: "Label-issue candidates",
            introduced_total: diff.label_issues.introduced.len(),
            resolved_total: diff.label_issues.resolved.len(),
            resolved_word: "resolved",
            introduced: diff
                .label_issues
                .introduced
                .iter()
                .take(SHOWN)
                .map(|i| issue(&new_thumbs, i))
                .collect(),
            resolved: diff
                .label_issues
                .resolved
                .iter()
                .take(SHOWN)
                .map(|i| issue(&old_thumbs, i))
                .collect(),
        },
        FindingSection {
            title: "Unreadable files",
            introduced_total: diff.unreadable.introduced.len(),
            resolved_total: diff.unreadable.fixed.len(),
            resolved_word: "fixed",
            introduced: diff
                .unreadable
                .introduced
                .iter()
                .take(SHOWN)
                .map(unreadable)
                .collect(),
            resolved: diff
                .unreadable
                .fixed
                .iter()
                .take(SHOWN)
                .map(unreadable)
                .collect(),
        },
    ];

    let s = &diff.summary;
    let facts = vec![
        Fact {
            label: "images before → after",
            value: format!("{} → {}", diff.old.images, diff.new.images),
        },
        Fact {
            label: "added",
            value: s.added.to_string(),
        },
        Fact {
            label: "removed",
            value: s.removed.to_string(),
        },
        Fact {
            label: "changed",
            value: s.changed.to_string(),
        },
        Fact {
            label: "relabelled",
            value: s.relabelled.to_string(),
        },
        Fact {
            label: "moved",
            value: s.moved.to_string(),
        },
        Fact {
            label: "unchanged",
            value: s.unchanged.to_string(),
        },
    ];
    DiffView {
        title: format!("{} → {}", diff.old.root, diff.new.root),
        tool_version: diff.tool_version.clone(),
        facts,
        gate: diff.gate.clone(),
        categories,
        classes,
        splits,
        normalisation,
        properties,
        findings,
    }
}

/// Renders diff.html. `style` is the report's style.css in force.
pub fn render(diff: &DiffJson, old: &Side, new: &Side, style: &str) -> Result<String> {
    let view = build_view(diff, old, new);
    let mut tera = tera::Tera::new();
    tera.add_raw_templates([("diff.html", TEMPLATE), ("style.css", style)])
        .map_err(|err| anyhow::anyhow!("{err}"))
        .context("the diff template has an error")?;
    tera.autoescape_on([".html"]);
    let context =
        tera::Context::from_serialize(&view).context("could not build the diff context")?;
    tera.render("diff.html", &context)
        .map_err(|err| anyhow::anyhow!("{err:?}"))
        .context("could not render diff.html")
}
