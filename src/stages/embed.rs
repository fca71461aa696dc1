//! Stage 5, embed: a feature vector per image, nearest neighbours, likely label errors,
//! outliers and the 2-D map. Not built yet: the artifact says so, and the report shows the
//! section as pending rather than inventing findings.

use serde::{Deserialize, Serialize};

use crate::config::EmbedConfig;
use crate::stages::ingest::IngestArtifact;

pub const NAME: &str = "embed";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedArtifact {
    /// "none" until an embedding is computed.
    pub method: String,
    pub points: usize,
}

pub fn run(_ingest: &IngestArtifact, _config: &EmbedConfig) -> EmbedArtifact {
    EmbedArtifact {
        method: "none".into(),
        points: 0,
    }
}
