//! The "How it was made" section: this run's stages with their status, reason and time, and
//! the settings in force as TOML.
//!
//! Stages are listed in the order the pipeline ran them, render itself excluded (it is still
//! running). Statuses and times change from run to run on the same inputs, so nothing built
//! here may feed report.json or summary.md, which stay comparable between runs.

use serde::Serialize;

use super::RenderInput;

#[derive(Debug, Serialize)]
pub struct ProvenanceView {
    pub stages: Vec<StageView>,
    pub settings_toml: String,
    /// Where the embedding came from: the built-in features, or the model file with its
    /// hash, input size and this run's throughput.
    pub embedding_source: String,
    /// How the map was drawn: from scratch, or from the last run's map.
    pub map_source: String,
}

#[derive(Debug, Serialize)]
pub struct StageView {
    pub name: String,
    pub status: String,
    pub reason: String,
    pub seconds: String,
}

pub fn build(input: &RenderInput) -> ProvenanceView {
    ProvenanceView {
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
        embedding_source: embedding_source(input),
        map_source: map_source(input),
    }
}

fn map_source(input: &RenderInput) -> String {
    let embed = &input.embed;
    if embed.map.is_empty() {
        return "none was drawn".into();
    }
    let points = crate::text::thousands(embed.points as u64);
    if embed.map_warm {
        format!(
            "t-SNE of {points} images, started from the previous run's map (few pictures had \
             changed) and refined for {} iterations; a run with --force=embed draws it from scratch",
            crate::stages::embed::map::WARM_ITERATIONS
        )
    } else {
        format!(
            "t-SNE of {points} images, drawn from scratch ({} iterations)",
            crate::stages::embed::map::ITERATIONS
        )
    }
}

fn embedding_source(input: &RenderInput) -> String {
    let embed = input.embed;
    let Some(model) = &embed.model else {
        return format!(
            "the built-in features ({}, {} values an image; no model, nothing downloaded)",
            embed.features, embed.feature_dims
        );
    };
    let counts = &embed.counts;
    let inference = if counts.pixel_part_reused || counts.features_computed == 0 {
        "no inference in this run (every vector came from the cache)".to_string()
    } else {
        format!(
            "{} images run through it in {:.1} s ({:.0} images/s)",
            crate::text::thousands(counts.features_computed as u64),
            counts.features_seconds,
            counts.features_computed as f64 / counts.features_seconds.max(1e-9)
        )
    };
    format!(
        "the model {} (content hash {}; input {}, pixels scaled {}; output \"{}\", {} values \
         an image{}), run in-process by {}; {inference}",
        model.file,
        model.hash,
        model.input,
        model.pixels,
        model.output,
        embed.feature_dims,
        if model.classifier {
            ", used as a classifier of the dataset's classes"
        } else {
            ""
        },
        if embed.features.ends_with("onnxruntime") {
            "onnxruntime"
        } else {
            "tract"
        }
    )
}
