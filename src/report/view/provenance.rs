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
    }
}
