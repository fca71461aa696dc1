//! The view of the embed stage: the label-issue gallery with its evidence, the class
//! confusion, outliers, and the interactive map's data and thumbnail atlas.
//!
//! The map's points travel as JSON inside a `<script type="application/json">` element, the
//! only place the report marks dataset strings as safe: [`script_json`] escapes `<`, `>` and
//! `&` as `\u003c`-style escapes, so no name can end the element or open a comment, and the
//! script reads it with `JSON.parse`, never as code. Hover images come from one JPEG atlas of
//! small tiles (one image for all points, about 1.5 MB for 10,000 points at 24 px) that the
//! script crops on a canvas.
//!
//! Scores, neighbours and map coordinates are the embed stage's; this module only selects and
//! words them, and never computes features or neighbours itself.

use std::io::Cursor;

use serde::Serialize;

use crate::stages::embed::EmbedArtifact;
use crate::stages::embed::findings::LabelIssue;
use crate::stages::ingest::Ingested;
use crate::text::thousands;

use super::{LegendEntry, Thumb, data_uri, thumb};

/// Label issues shown with their neighbours (report.json has all that were kept).
const ISSUES_SHOWN: usize = 40;
const OUTLIERS_SHOWN: usize = 32;
/// Side of a hover tile in the atlas, in pixels.
const TILE: u32 = 24;
const ATLAS_QUALITY: u8 = 70;

#[derive(Debug, Serialize)]
pub struct EmbedView {
    /// True when the stage produced nothing (no images).
    pub pending: bool,
    pub summary: String,
    pub method_note: String,
    /// Per split (non-reference splits first), or one group without splits.
    pub issue_groups: Vec<IssueGroup>,
    pub confusion: ConfusionView,
    pub overlaps: Vec<String>,
    pub outliers: Vec<Thumb>,
    pub separation: Vec<SeparationRow>,
    pub map: Option<MapView>,
}

#[derive(Debug, Serialize)]
pub struct IssueGroup {
    /// "test split: 1,084 candidates"; empty without splits.
    pub title: String,
    pub note: String,
    pub issues: Vec<IssueView>,
}

#[derive(Debug, Serialize)]
pub struct IssueView {
    pub image: Thumb,
    pub given: String,
    pub suggested: String,
    pub score: String,
    pub evidence: String,
    pub neighbours: Vec<Thumb>,
}

#[derive(Debug, Serialize)]
pub struct ConfusionView {
    pub classes: Vec<String>,
    pub rows: Vec<ConfusionRow>,
}

#[derive(Debug, Serialize)]
pub struct ConfusionRow {
    pub class: String,
    pub cells: Vec<ConfusionCell>,
}

#[derive(Debug, Serialize)]
pub struct ConfusionCell {
    pub value: String,
    /// A background colour computed here from the value (never from the dataset).
    pub shade: String,
}

#[derive(Debug, Serialize)]
pub struct SeparationRow {
    pub class: String,
    pub color: String,
    pub images: String,
    pub feature_agreement: String,
    pub mapped: String,
    pub map_agreement: String,
}

#[derive(Debug, Serialize)]
pub struct MapView {
    pub note: String,
    pub legend: Vec<LegendEntry>,
    /// JSON escaped for a script element, see the module doc.
    pub data_json: String,
    pub atlas_src: String,
}

/// The data the map script reads.
#[derive(Debug, Serialize)]
struct MapData<'a> {
    classes: &'a [String],
    colors: Vec<String>,
    splits: Vec<String>,
    /// Coordinates in 0..=10000 (integers keep the JSON small).
    x: Vec<u16>,
    y: Vec<u16>,
    class: Vec<u32>,
    split: Vec<u32>,
    path: Vec<&'a str>,
    tile: u32,
    columns: u32,
}

pub fn build(ingested: &Ingested, embed: &EmbedArtifact) -> EmbedView {
    let ingest = &ingested.artifact;
    if embed.method == "none" && embed.label_issues.is_empty() && embed.k == 0 {
        return EmbedView {
            pending: true,
            summary: String::new(),
            method_note: String::new(),
            issue_groups: Vec::new(),
            confusion: ConfusionView {
                classes: Vec::new(),
                rows: Vec::new(),
            },
            overlaps: Vec::new(),
            outliers: Vec::new(),
            separation: Vec::new(),
            map: None,
        };
    }
    let mut classes = ingest.classes.clone();
    // The artifact may know labels outside the class list (see embed::run); name them too.
    for record in &ingest.images {
        if !classes.contains(&record.label) {
            classes.push(record.label.clone());
        }
    }
    let name = |c: u32| classes.get(c as usize).cloned().unwrap_or_default();
    let valid = |i: usize| i < ingest.images.len();
    let captioned = |i: usize| Thumb {
        note: ingest.images[i].label.clone(),
        ..thumb(ingested, i)
    };

    let issue_view = |f: &crate::stages::embed::Finding<LabelIssue>| {
        let d = &f.detail;
        IssueView {
            image: thumb(ingested, f.image),
            given: name(d.given),
            suggested: name(d.suggested),
            score: if f.score < 0.005 {
                "<0.01".into()
            } else {
                format!("{:.2}", f.score)
            },
            evidence: format!(
                "nearest {}: {:.2}, nearest {}: {:.2} · neighbours: {:.0}% {}, {:.0}% {} · \
                 model: {:.0}% {}, {:.0}% {}",
                name(d.suggested),
                d.nearest_suggested,
                name(d.given),
                d.nearest_given,
                100.0 * d.vote_suggested,
                name(d.suggested),
                100.0 * d.vote_given,
                name(d.given),
                100.0 * d.model_suggested,
                name(d.suggested),
                100.0 * d.model_given,
                name(d.given),
            ),
            neighbours: f
                .neighbours
                .iter()
                .map(|&j| j as usize)
                .filter(|&j| valid(j))
                .map(captioned)
                .collect(),
        }
    };
    let split_of = |i: usize| ingest.images[i].split.clone();
    let reference = embed.reference_split.clone();
    // Splits in the table's order, the reference split last: errors in a test split
    // corrupt every benchmark number, so they come first.
    let mut group_splits: Vec<Option<String>> = ingest
        .splits
        .iter()
        .filter(|s| Some(*s) != reference.as_ref())
        .cloned()
        .map(Some)
        .collect();
    if ingest.splits.is_empty() {
        group_splits.push(None);
    } else if reference.is_some() {
        group_splits.push(reference.clone());
    }
    let issue_groups: Vec<IssueGroup> = group_splits
        .into_iter()
        .filter_map(|split| {
            let members: Vec<_> = embed
                .label_issues
                .iter()
                .filter(|f| valid(f.image) && split_of(f.image) == split)
                .collect();
            let name = split.clone()?;
            let is_reference = Some(&name) == reference.as_ref();
            let total = embed
                .label_issue_split_totals
                .get(&name)
                .copied()
                .unwrap_or(members.len());
            Some(IssueGroup {
                title: format!(
                    "{name} split: {} candidates{}",
                    thousands(total as u64),
                    if total > ISSUES_SHOWN {
                        format!(", the first {ISSUES_SHOWN} shown")
                    } else {
                        String::new()
                    }
                ),
                note: if is_reference && embed.model.is_some() {
                    format!(
                        "Compared with the other images of {name}. If your model was trained on \
                         this split it has memorised its labels, so few of its errors show here."
                    )
                } else if is_reference {
                    format!("Compared with the other images of {name}.")
                } else if let Some(reference) = &reference {
                    format!("Compared with the images of the {reference} split.")
                } else {
                    String::new()
                },
                issues: members
                    .into_iter()
                    .take(ISSUES_SHOWN)
                    .map(issue_view)
                    .collect(),
            })
        })
        .collect();
    let issue_groups = if ingest.splits.is_empty() {
        vec![IssueGroup {
            title: String::new(),
            note: String::new(),
            issues: embed
                .label_issues
                .iter()
                .filter(|f| valid(f.image))
                .take(ISSUES_SHOWN)
                .map(issue_view)
                .collect(),
        }]
    } else {
        issue_groups
    };

    let palette = class_colors(classes.len());
    let confusion = ConfusionView {
        classes: classes
            .iter()
            .take(embed.confusion.len())
            .cloned()
            .collect(),
        rows: embed
            .confusion
            .iter()
            .enumerate()
            .map(|(a, row)| ConfusionRow {
                class: name(a as u32),
                cells: row
                    .iter()
                    .enumerate()
                    .map(|(b, &v)| ConfusionCell {
                        value: if v == 0.0 {
                            String::new()
                        } else {
                            format!("{:.0}", 100.0 * v)
                        },
                        shade: if a == b {
                            format!("rgba(47,95,167,{:.2})", v.clamp(0.0, 1.0) * 0.6)
                        } else {
                            format!("rgba(181,71,8,{:.2})", (v * 3.0).clamp(0.0, 1.0) * 0.6)
                        },
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (a, row) in embed.confusion.iter().enumerate() {
        for (b, &v) in row.iter().enumerate() {
            if a != b && v > 0.0 {
                pairs.push((v, a, b));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    let overlaps = pairs
        .iter()
        .take(5)
        .map(|&(v, a, b)| {
            format!(
                "{:.0}% of the neighbours of `{}` images are `{}` images",
                100.0 * v,
                name(a as u32),
                name(b as u32)
            )
        })
        .collect();

    let outliers = embed
        .outliers
        .iter()
        .filter(|f| valid(f.image))
        .take(OUTLIERS_SHOWN)
        .map(|f| Thumb {
            note: format!("{:.3}", f.score),
            ..thumb(ingested, f.image)
        })
        .collect();

    let separation = embed
        .separation
        .iter()
        .enumerate()
        .map(|(c, s)| SeparationRow {
            class: name(c as u32),
            color: palette[c % palette.len()].clone(),
            images: thousands(s.images as u64),
            feature_agreement: format!("{:.2}", s.feature_agreement),
            mapped: thousands(s.mapped as u64),
            map_agreement: if s.mapped > 0 {
                format!("{:.2}", s.map_agreement)
            } else {
                "–".into()
            },
        })
        .collect();

    let total_issues = embed.label_issue_total;
    let summary = format!(
        "{} of {} images are closer to an image of another class than to any image of their own; \
         the most likely are listed below{}, with their nearest neighbours as evidence. Review \
         them: many will be ambiguous or unusual pictures, some wrongly labelled.",
        thousands(total_issues as u64),
        thousands(embed.images as u64),
        if ingest.splits.is_empty() {
            ""
        } else {
            " per split"
        },
    );
    let source = match &embed.model {
        Some(model) => format!(
            "the output {:?} of the model {} ({} values an image)",
            model.output, model.file, embed.feature_dims
        ),
        None => format!(
            "{} ({} values an image: gradient-orientation histograms at three scales, two \
             colour histograms and an 8x8 image in opponent colours)",
            embed.features, embed.feature_dims
        ),
    };
    let witness = if embed.model.as_ref().is_some_and(|m| m.classifier) {
        "The model is used as a classifier: \"model\" below is its own probability of each \
         class (its outputs taken in the order of the class names)."
    } else {
        "\"model\" below is a linear classifier trained on the features without the image \
         (out-of-fold)."
    };
    let method_note = format!(
        "Features: {source}, reduced by PCA to {} components ({:.0}% of the variance); {} \
         nearest neighbours by cosine similarity. A weighted vote of its neighbours gives an \
         image's own label for {:.1}% of images. {witness}",
        embed.components,
        100.0 * embed.explained_variance,
        embed.k,
        100.0 * embed.vote_accuracy,
    );
    let map = (!embed.map.is_empty()).then(|| map_view(ingested, embed, &classes, &palette));
    EmbedView {
        pending: false,
        summary,
        method_note,
        issue_groups,
        confusion,
        overlaps,
        outliers,
        separation,
        map,
    }
}

fn map_view(
    ingested: &Ingested,
    embed: &EmbedArtifact,
    classes: &[String],
    palette: &[String],
) -> MapView {
    let ingest = &ingested.artifact;
    let points: Vec<_> = embed
        .map
        .iter()
        .filter(|p| (p.image as usize) < ingest.images.len())
        .collect();
    let n = points.len() as u32;
    let columns = (f64::from(n).sqrt().ceil() as u32).max(1);
    let quantise = |v: f32| (((v.clamp(-1.0, 1.0) + 1.0) / 2.0) * 10_000.0).round() as u16;
    let split_names: Vec<String> = ingest.splits.clone();
    let data = MapData {
        classes,
        colors: palette.to_vec(),
        splits: split_names.clone(),
        x: points.iter().map(|p| quantise(p.x)).collect(),
        y: points.iter().map(|p| quantise(p.y)).collect(),
        class: points
            .iter()
            .map(|p| embed.labels.get(p.image as usize).copied().unwrap_or(0))
            .collect(),
        split: points
            .iter()
            .map(|p| {
                let split = ingest.images[p.image as usize].split.as_deref();
                split
                    .and_then(|s| split_names.iter().position(|x| x == s))
                    .map_or(u32::MAX, |i| i as u32)
            })
            .collect(),
        path: points
            .iter()
            .map(|p| ingest.images[p.image as usize].path.as_str())
            .collect(),
        tile: TILE,
        columns,
    };
    let atlas_src = atlas(
        ingested,
        &points.iter().map(|p| p.image as usize).collect::<Vec<_>>(),
        columns,
    );
    let note = if embed.points < embed.images {
        format!(
            "{} of {} images, a seeded random sample chosen by pixels, so relabelling keeps the map (setting embed.map_points).",
            thousands(embed.points as u64),
            thousands(embed.images as u64)
        )
    } else {
        format!("All {} images.", thousands(embed.points as u64))
    };
    MapView {
        note,
        legend: classes
            .iter()
            .zip(palette)
            .map(|(name, color)| LegendEntry {
                name: name.clone(),
                color: color.clone(),
            })
            .collect(),
        data_json: script_json(&data),
        atlas_src,
    }
}

/// One JPEG of `TILE`-px tiles, tile `k` at column `k % columns`, row `k / columns`.
fn atlas(ingested: &Ingested, images: &[usize], columns: u32) -> String {
    let rows = (images.len() as u32).div_ceil(columns).max(1);
    let mut sheet =
        image::RgbImage::from_pixel(columns * TILE, rows * TILE, image::Rgb([238, 238, 238]));
    for (k, &i) in images.iter().enumerate() {
        let thumb = ingested.thumb(i);
        let (w, h) = thumb.dimensions();
        let scale = f64::from(TILE) / f64::from(w.max(h).max(1));
        let (tw, th) = (
            ((f64::from(w) * scale).round() as u32).clamp(1, TILE),
            ((f64::from(h) * scale).round() as u32).clamp(1, TILE),
        );
        let small = image::imageops::resize(&thumb, tw, th, image::imageops::FilterType::Triangle);
        let x = (k as u32 % columns) * TILE + (TILE - tw) / 2;
        let y = (k as u32 / columns) * TILE + (TILE - th) / 2;
        image::imageops::replace(&mut sheet, &small, i64::from(x), i64::from(y));
    }
    let mut bytes = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), ATLAS_QUALITY);
    // Encoding an in-memory buffer cannot fail short of allocation failure; an empty atlas
    // only loses the hover images.
    let _ = sheet.write_with_encoder(encoder);
    data_uri("image/jpeg", &bytes)
}

/// JSON safe inside a `<script type="application/json">` element.
pub fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Distinct colours per class: the ten of Tableau first, then hues by the golden angle.
pub fn class_colors(n: usize) -> Vec<String> {
    const TEN: [&str; 10] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac",
    ];
    (0..n.max(1))
        .map(|i| {
            if i < TEN.len() {
                TEN[i].to_string()
            } else {
                format!("hsl({:.0},60%,50%)", (i as f64 * 137.508) % 360.0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_element_or_open_a_comment() {
        let json = script_json(&vec!["</script><!--<script>&amp;"]);
        assert!(
            !json.contains('<') && !json.contains('>') && !json.contains('&'),
            "{json}"
        );
        let back: Vec<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec!["</script><!--<script>&amp;".to_string()]);
    }
}
