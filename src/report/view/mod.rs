//! View structs: exactly what the templates see, built once from the stage artifacts.
//!
//! [`build`] calls one builder per section of the report, in page order; each lives in its
//! own module and reads only the artifacts in [`RenderInput`], never the dataset. Numbers are
//! formatted in the builders (thousands separators, fixed decimals) so templates stay simple.
//! Strings from the dataset are passed as they are and escaped by Tera; only markup this
//! program generated itself (charts, data URIs) may be marked safe in the template.
//!
//! The sections' fields are flattened into one context, so templates name them directly
//! (`facts`, `class_rows`, `unreadable`); two sections must therefore never use the same field
//! name, which a test below guards. Duplicates and embed keep their own object
//! (`duplicates.…`, `embed.…`).

pub mod classes;
pub mod duplicates;
pub mod embed;
pub mod files;
pub mod overview;
pub mod pixels;
pub mod properties;
pub mod provenance;

use std::io::Cursor;

use base64::Engine;
use serde::Serialize;

use crate::runlog::StageReport;
use crate::stages::dedup::DedupArtifact;
use crate::stages::embed::EmbedArtifact;
use crate::stages::ingest::Ingested;
use crate::stages::sample::SampleArtifact;
use crate::stages::statistics::StatisticsArtifact;

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
    /// The review file's judgements (empty without one): which findings were reviewed.
    pub review: &'a crate::review::reviewfile::Judgements,
    /// The review file's name, when the dataset has one.
    pub review_file: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub title: String,
    pub tool_version: String,
    pub dataset_name: String,
    pub layout: String,
    #[serde(flatten)]
    pub overview: overview::OverviewView,
    #[serde(flatten)]
    pub classes: classes::ClassesView,
    #[serde(flatten)]
    pub pixels: pixels::PixelsView,
    #[serde(flatten)]
    pub properties: properties::PropertiesView,
    pub duplicates: duplicates::DuplicatesView,
    /// Sections 6 and 7: label issues, outliers, class confusion and the map.
    pub embed: embed::EmbedView,
    #[serde(flatten)]
    pub files: files::FilesView,
    #[serde(flatten)]
    pub provenance: provenance::ProvenanceView,
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
pub struct LegendEntry {
    pub name: String,
    /// "#rrggbb", generated here (never from the dataset).
    pub color: String,
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

pub fn build(input: &RenderInput) -> ReportView {
    let ingest = &input.ingested.artifact;
    let files = files::build(ingest);
    ReportView {
        title: input.title.clone(),
        tool_version: crate::TOOL_VERSION.to_string(),
        dataset_name: input.dataset_name.clone(),
        layout: ingest.kind.describe().to_string(),
        overview: overview::build(input, &files),
        classes: classes::build(input),
        pixels: pixels::build(input.statistics),
        properties: properties::build(input),
        duplicates: duplicates::build(input),
        embed: embed::build(input.ingested, input.embed),
        files,
        provenance: provenance::build(input),
    }
}

/// A thumbnail as an inline PNG with its caption data.
fn thumb(ingested: &Ingested, index: usize) -> Thumb {
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

/// An image inline as a PNG data URI (also used by diff.html).
pub fn png_data_uri(image: &image::RgbImage) -> String {
    let mut bytes = Vec::new();
    // Encoding an in-memory RGB buffer to PNG cannot fail short of allocation failure.
    let _ = image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png);
    data_uri("image/png", &bytes)
}

/// `bytes` inline, as base64: the report never refers to a file or the network.
fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn fact(label: &str, value: String) -> Fact {
    Fact {
        label: label.to_string(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::dataset::DatasetKind;
    use crate::decode::DecodeOptions;
    use crate::stages::ingest::IngestArtifact;

    /// The keys one value serialises to at its top level.
    fn keys(value: &impl Serialize) -> Vec<String> {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    /// Sections are flattened into one context: a field name used by two sections would
    /// silently hide one of them from the templates.
    #[test]
    fn sections_never_share_a_field_name() {
        let ingested = Ingested::new(
            IngestArtifact {
                kind: DatasetKind::Folder { has_splits: false },
                classes: Vec::new(),
                splits: Vec::new(),
                images: Vec::new(),
                rejected: Vec::new(),
                skipped: Vec::new(),
                thumbs_len: 0,
                thumbs_digest: 0,
                decoded_with: DecodeOptions {
                    thumbnail_size: 64,
                    max_pixels: 1 << 20,
                },
            },
            Vec::new(),
        );
        let input = RenderInput {
            title: String::new(),
            dataset_name: String::new(),
            ingested: &ingested,
            sample: &SampleArtifact::default(),
            statistics: &StatisticsArtifact::default(),
            dedup: &DedupArtifact::default(),
            embed: &EmbedArtifact::default(),
            stages: &[],
            settings_toml: String::new(),
            review: &Default::default(),
            review_file: None,
        };
        let view = build(&input);
        let mut all = vec![
            "title".to_string(),
            "tool_version".into(),
            "dataset_name".into(),
            "layout".into(),
            "duplicates".into(),
            "embed".into(),
        ];
        all.extend(keys(&view.overview));
        all.extend(keys(&view.classes));
        all.extend(keys(&view.pixels));
        all.extend(keys(&view.properties));
        all.extend(keys(&view.files));
        all.extend(keys(&view.provenance));
        let distinct: BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        assert_eq!(keys(&view).len(), all.len());
    }
}
