//! View structs: exactly what the templates see, built once from the stage artifacts.
//!
//! Numbers are formatted here (thousands separators, fixed decimals) so templates stay
//! simple. Strings from the dataset are passed as they are and escaped by Tera.

use std::io::Cursor;

use base64::Engine;
use serde::Serialize;

use crate::report::duplicates::{self, DuplicatesView};
use crate::runlog::StageReport;
use crate::stages::dedup::DedupArtifact;
use crate::stages::embed::EmbedArtifact;
use crate::stages::ingest::{Ingested, RejectKind};
use crate::stages::sample::SampleArtifact;
use crate::stages::statistics::{ChannelStats, StatisticsArtifact};

/// Everything the render stage reads.
pub struct RenderInput<'a> {
    pub title: String,
    pub dataset_name: String,
    pub ingested: &'a Ingested,
    pub sample: &'a SampleArtifact,
    pub statistics: &'a StatisticsArtifact,
    pub dedup: &'a DedupArtifact,
    pub embed: &'a EmbedArtifact,
    /// This run's stages before render, for "How it was made".
    pub stages: &'a [StageReport],
    pub settings_toml: String,
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub title: String,
    pub tool_version: String,
    pub dataset_name: String,
    pub layout: String,
    pub facts: Vec<Fact>,
    pub alerts: Vec<Alert>,
    pub splits: Vec<String>,
    pub class_rows: Vec<ClassRow>,
    pub balance_svg: String,
    pub legend: Vec<LegendEntry>,
    pub formats: Vec<Fact>,
    pub colors: Vec<Fact>,
    pub sizes: Vec<Fact>,
    pub normalisation: Normalisation,
    pub resolution_note: String,
    pub class_images: Vec<ClassImageView>,
    pub split_class_images: Vec<ClassImageView>,
    pub class_histograms: Vec<ClassHistogramView>,
    pub alike: Vec<AlikeView>,
    pub distributions: Vec<DistributionView>,
    pub extremes: Vec<ExtremeView>,
    pub greyscale: Vec<Thumb>,
    pub greyscale_count: String,
    pub samples: Vec<ClassSamples>,
    pub duplicates: DuplicatesView,
    /// Sections 6 and 7: label issues, outliers, class confusion and the map.
    pub embed: super::embed_view::EmbedView,
    pub unreadable: Vec<Note>,
    pub skipped: Vec<Note>,
    pub stages: Vec<StageView>,
    pub settings_toml: String,
}

#[derive(Debug, Serialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Alert {
    /// "warn" or "info".
    pub level: &'static str,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct ClassRow {
    pub name: String,
    pub counts: Vec<String>,
    pub total: String,
    pub share: String,
}

#[derive(Debug, Serialize)]
pub struct Normalisation {
    pub mean: String,
    pub std: String,
    pub pixels: String,
    pub per_split: Vec<SplitNormalisation>,
}

#[derive(Debug, Serialize)]
pub struct SplitNormalisation {
    pub split: String,
    pub mean: String,
    pub std: String,
}

#[derive(Debug, Serialize)]
pub struct LegendEntry {
    pub name: String,
    /// "#rrggbb", generated here (never from the dataset).
    pub color: String,
}

#[derive(Debug, Serialize)]
pub struct ClassImageView {
    pub class: String,
    pub split: String,
    pub images: String,
    pub mean_src: String,
    pub std_src: String,
}

#[derive(Debug, Serialize)]
pub struct ClassHistogramView {
    pub class: String,
    pub svg: String,
}

#[derive(Debug, Serialize)]
pub struct AlikeView {
    pub a: String,
    pub b: String,
    pub distance: String,
    pub a_svg: String,
    pub b_svg: String,
    pub a_mean: String,
    pub b_mean: String,
}

#[derive(Debug, Serialize)]
pub struct DistributionView {
    pub property: String,
    /// Empty when every image has the same value (then `constant` says it).
    pub svg: String,
    pub constant: String,
}

#[derive(Debug, Serialize)]
pub struct ExtremeView {
    pub title: String,
    pub images: Vec<Thumb>,
}

#[derive(Debug, Serialize)]
pub struct Thumb {
    pub src: String,
    pub path: String,
    pub label: String,
    pub split: String,
    pub size: String,
    /// A short caption under the image (a property value), or empty.
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct ClassSamples {
    pub name: String,
    pub count: String,
    pub images: Vec<Thumb>,
}

#[derive(Debug, Serialize)]
pub struct Note {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct StageView {
    pub name: String,
    pub status: String,
    pub reason: String,
    pub seconds: String,
}

pub fn build(input: &RenderInput) -> ReportView {
    let ingest = &input.ingested.artifact;
    let stats = input.statistics;
    let unreadable: Vec<Note> = ingest
        .rejected
        .iter()
        .filter(|r| r.kind == RejectKind::Unreadable)
        .map(|r| Note {
            path: r.path.clone(),
            reason: r.reason.clone(),
        })
        .collect();
    let skipped: Vec<Note> = ingest
        .skipped
        .iter()
        .map(|n| Note {
            path: n.path.clone(),
            reason: n.reason.clone(),
        })
        .chain(
            ingest
                .rejected
                .iter()
                .filter(|r| r.kind == RejectKind::NotImage)
                .map(|r| Note {
                    path: r.path.clone(),
                    reason: r.reason.clone(),
                }),
        )
        .collect();

    let split_keys: Vec<String> = if ingest.splits.is_empty() {
        vec![String::new()]
    } else {
        ingest.splits.clone()
    };
    let total_images = ingest.images.len();
    let mut class_rows = Vec::new();
    let mut balance_counts = Vec::new();
    for class in &ingest.classes {
        let per_split = stats.class_counts.get(class);
        let counts: Vec<usize> = split_keys
            .iter()
            .map(|s| per_split.and_then(|m| m.get(s)).copied().unwrap_or(0))
            .collect();
        let total: usize = counts.iter().sum();
        class_rows.push(ClassRow {
            name: class.clone(),
            counts: counts.iter().map(|&n| thousands(n as u64)).collect(),
            total: thousands(total as u64),
            share: percent(total, total_images),
        });
        balance_counts.push(counts);
    }
    let balance_svg = super::charts::class_balance(&ingest.classes, &balance_counts);
    let legend = ingest
        .splits
        .iter()
        .enumerate()
        .map(|(i, split)| {
            let c = super::charts::SPLIT_COLORS[i % super::charts::SPLIT_COLORS.len()];
            LegendEntry {
                name: split.clone(),
                color: format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2),
            }
        })
        .collect();

    let mut facts = vec![
        fact("images analysed", thousands(total_images as u64)),
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
    facts.push(fact("unreadable files", thousands(unreadable.len() as u64)));
    facts.push(fact("skipped files", thousands(skipped.len() as u64)));

    let alerts = alerts(input, unreadable.len(), skipped.len());

    let mut sizes: Vec<(&String, &usize)> = stats.sizes.iter().collect();
    sizes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let sizes = sizes
        .into_iter()
        .take(12)
        .map(|(s, n)| fact(s, thousands(*n as u64)))
        .collect();

    let samples = ingest
        .classes
        .iter()
        .map(|class| {
            let indices = input.sample.per_class.get(class);
            let count = stats
                .class_counts
                .get(class)
                .map(|m| m.values().sum::<usize>())
                .unwrap_or(0);
            ClassSamples {
                name: class.clone(),
                count: thousands(count as u64),
                images: indices
                    .map(|ix| ix.iter().map(|&i| thumb(input.ingested, i)).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();

    let duplicates = duplicates::build(input);

    let class_images: Vec<ClassImageView> = stats
        .class_images
        .iter()
        .filter(|c| c.split.is_none())
        .map(class_image_view)
        .collect();
    let split_class_images: Vec<ClassImageView> = stats
        .class_images
        .iter()
        .filter(|c| c.split.is_some())
        .map(class_image_view)
        .collect();
    let histogram_svg = |class: &str| {
        stats
            .histograms
            .iter()
            .find(|h| h.class == class)
            .map(|h| super::charts::color_histogram(&h.red, &h.green, &h.blue, &h.brightness))
            .unwrap_or_default()
    };
    let mean_of = |class: &str| {
        class_images
            .iter()
            .find(|c| c.class == class)
            .map(|c| c.mean_src.clone())
            .unwrap_or_default()
    };
    let class_histograms = stats
        .histograms
        .iter()
        .map(|h| ClassHistogramView {
            class: h.class.clone(),
            svg: histogram_svg(&h.class),
        })
        .collect();
    let alike = stats
        .similar_classes
        .iter()
        .take(ALIKE_SHOWN)
        .map(|pair| AlikeView {
            a: pair.a.clone(),
            b: pair.b.clone(),
            distance: format!("{:.3}", pair.distance),
            a_svg: histogram_svg(&pair.a),
            b_svg: histogram_svg(&pair.b),
            a_mean: mean_of(&pair.a),
            b_mean: mean_of(&pair.b),
        })
        .collect();
    let palette = [
        plotters::style::RGBColor(66, 110, 170),
        plotters::style::RGBColor(230, 145, 56),
        plotters::style::RGBColor(90, 160, 90),
    ];
    let distributions = stats
        .distributions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let constant = d.min == d.max;
            DistributionView {
                property: d.property.replace('_', " "),
                svg: if constant {
                    String::new()
                } else {
                    super::charts::distribution(&d.counts, d.min, d.max, palette[i % palette.len()])
                },
                constant: if constant {
                    format!("every image: {}", trim_number(d.min))
                } else {
                    String::new()
                },
            }
        })
        .collect();
    let extremes = stats
        .extremes
        .iter()
        .filter(|e| !e.images.is_empty())
        .map(|e| ExtremeView {
            title: e.title.clone(),
            images: e
                .images
                .iter()
                .map(|&(i, value)| Thumb {
                    note: value_note(&e.name, value),
                    ..thumb(input.ingested, i)
                })
                .collect(),
        })
        .collect();
    let greyscale = stats
        .greyscale_in_colour
        .iter()
        .take(GREYSCALE_SHOWN)
        .map(|&i| thumb(input.ingested, i))
        .collect();

    ReportView {
        title: input.title.clone(),
        tool_version: crate::TOOL_VERSION.to_string(),
        dataset_name: input.dataset_name.clone(),
        layout: ingest.kind.describe().to_string(),
        facts,
        alerts,
        splits: ingest.splits.clone(),
        class_rows,
        balance_svg,
        legend,
        formats: stats
            .formats
            .iter()
            .map(|(f, n)| fact(f, thousands(*n as u64)))
            .collect(),
        colors: stats
            .colors
            .iter()
            .map(|(f, n)| fact(f, thousands(*n as u64)))
            .collect(),
        sizes,
        normalisation: Normalisation {
            mean: triple(&stats.overall.mean),
            std: triple(&stats.overall.std),
            pixels: thousands(stats.overall.pixels),
            per_split: stats
                .per_split
                .iter()
                .map(|(split, s): (&String, &ChannelStats)| SplitNormalisation {
                    split: split.clone(),
                    mean: triple(&s.mean),
                    std: triple(&s.std),
                })
                .collect(),
        },
        resolution_note: stats.resolution.note.clone(),
        class_images,
        split_class_images,
        class_histograms,
        alike,
        distributions,
        extremes,
        greyscale,
        greyscale_count: thousands(stats.greyscale_in_colour.len() as u64),
        samples,
        duplicates,
        embed: super::embed_view::build(input.ingested, input.embed),
        unreadable,
        skipped,
        stages: input
            .stages
            .iter()
            .map(|s| StageView {
                name: s.name.name().to_string(),
                status: s.status.as_str().to_string(),
                reason: s.reason.clone().unwrap_or_default(),
                seconds: format!("{:.2}", s.seconds),
            })
            .collect(),
        settings_toml: input.settings_toml.clone(),
    }
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
                plural(unreadable, "file", "files")
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
                plural(greyscale, "image", "images")
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
                plural(skipped, "file", "files")
            ),
        });
    }
    alerts
}

/// A thumbnail as an inline PNG with its caption data.
pub fn thumb(ingested: &Ingested, index: usize) -> Thumb {
    let record = &ingested.artifact.images[index];
    Thumb {
        src: png_data_uri(&ingested.thumb(index)),
        path: record.path.clone(),
        label: record.label.clone(),
        split: record.split.clone().unwrap_or_default(),
        size: format!("{}x{}", record.width, record.height),
        note: String::new(),
    }
}

fn class_image_view(image: &crate::stages::statistics::ClassImage) -> ClassImageView {
    let to_uri = |bytes: &[u8]| {
        image::RgbImage::from_raw(image.width, image.height, bytes.to_vec())
            .map(|img| png_data_uri(&img))
            .unwrap_or_default()
    };
    ClassImageView {
        class: image.class.clone(),
        split: image.split.clone().unwrap_or_default(),
        images: thousands(image.images as u64),
        mean_src: to_uri(&image.mean_rgb),
        std_src: to_uri(&image.std_rgb),
    }
}

/// Formats a property value for a caption.
fn value_note(name: &str, value: f64) -> String {
    match name {
        "odd_size" => format!("aspect {value:.2}"),
        "blurriest" => format!("{value:.0}"),
        "lowest_information" => format!("{value:.2} bits"),
        _ => format!("{value:.3}"),
    }
}

/// Alike pairs shown side by side.
const ALIKE_SHOWN: usize = 3;
/// Greyscale images shown (all are in report.json).
const GREYSCALE_SHOWN: usize = 32;

pub fn png_data_uri(image: &image::RgbImage) -> String {
    let mut bytes = Vec::new();
    // Encoding an in-memory RGB buffer to PNG cannot fail short of allocation failure.
    let _ = image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    )
}

/// 32.0 -> "32", 0.25 -> "0.25".
fn trim_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn fact(label: &str, value: String) -> Fact {
    Fact {
        label: label.to_string(),
        value,
    }
}

fn triple(v: &[f64; 3]) -> String {
    format!("[{:.4}, {:.4}, {:.4}]", v[0], v[1], v[2])
}

pub(crate) fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    crate::text::plural(n as u64, one, many)
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

pub use crate::text::thousands;

pub fn human_bytes(n: u64) -> String {
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
