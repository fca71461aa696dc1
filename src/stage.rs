//! [`Stage`]: the names of the six pipeline stages, in order. A leaf module: the command
//! line, the cache, the run log and the orchestrator all speak of stages through it, and it
//! depends on nothing in the crate.

use serde::{Deserialize, Serialize};

/// One stage of the pipeline. The order of the variants is the order of the pipeline:
/// `--force=STAGE` reruns that stage and every later one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Ingest,
    Sample,
    Statistics,
    Dedup,
    Embed,
    Render,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] = [
        Stage::Ingest,
        Stage::Sample,
        Stage::Statistics,
        Stage::Dedup,
        Stage::Embed,
        Stage::Render,
    ];

    /// The stage's name: its cache folder, its key in run.json, its `--force` value.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Sample => "sample",
            Stage::Statistics => "statistics",
            Stage::Dedup => "dedup",
            Stage::Embed => "embed",
            Stage::Render => "render",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_serde_and_clap_agree() {
        for stage in Stage::ALL {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.name()));
            let value = stage.to_possible_value().unwrap();
            assert_eq!(value.get_name(), stage.name());
        }
        assert!(
            Stage::ALL.windows(2).all(|w| w[0] < w[1]),
            "ALL is in order"
        );
    }
}
