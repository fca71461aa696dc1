//! The on-disk cache: per-stage fingerprints and artifacts inside `<out>/cache/`.
//!
//! Freshness model (after cargo's fingerprints and DVC's lock file):
//! - a stage's fingerprint is a stable hash of [`FingerprintInputs`]: stage name, the stage's
//!   version constant, the tool version, only the config section that stage reads, its upstream
//!   stages' fingerprints, and stage-specific detail (for ingest: every unit's path, label and
//!   content hash). No absolute path ever enters it, so moving the dataset or the output folder
//!   keeps the cache valid.
//! - `<stage>/fingerprint` holds the short hash for the quick comparison; `<stage>/inputs.json`
//!   holds the inputs themselves, used only to explain *why* a stage is stale.
//! - To save, the old fingerprint is removed first, the artifacts are written atomically, then
//!   the sidecar, then the fingerprint last. A run killed at any moment leaves either a
//!   complete entry or one without a fingerprint, which the next run recomputes.
//! - A fresh fingerprint is trusted only if every artifact file still has the size recorded
//!   with it; a missing, short or undecodable artifact means "recompute, with a warning",
//!   never an error and never a wrong report. Serialised artifacts end with a checksum
//!   ([`seal`]), so a damaged one cannot pass for data.

pub mod fingerprint;
pub mod stale;
pub mod statcache;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Serialize, de::DeserializeOwned};

pub use fingerprint::{FingerprintInputs, Freshness, Sidecar};
pub use stale::{Change, StaleReason};

use crate::stage::Stage;

use crate::fsutil;

/// The cache folder of one output folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(out: &Path) -> Cache {
        Cache {
            root: out.join("cache"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The output folder the cache lives in (where the report files go).
    pub fn out_dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    pub fn stage_dir(&self, stage: Stage) -> PathBuf {
        self.root.join(stage.name())
    }

    fn fingerprint_path(&self, stage: Stage) -> PathBuf {
        self.stage_dir(stage).join("fingerprint")
    }

    fn sidecar_path(&self, stage: Stage) -> PathBuf {
        self.stage_dir(stage).join("inputs.json")
    }

    /// Decides whether `stage` can be reused, and if not, says why in plain words.
    pub fn freshness(&self, inputs: &FingerprintInputs, out_dir: &Path) -> Freshness {
        let stage = inputs.stage;
        let wanted = inputs.fingerprint();
        let stored = std::fs::read_to_string(self.fingerprint_path(stage)).ok();
        let sidecar: Option<Sidecar> = std::fs::read(self.sidecar_path(stage))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match (stored, sidecar) {
            (Some(stored), Some(sidecar)) if stored.trim() == wanted => {
                if sidecar.fingerprint != wanted {
                    return Freshness::Stale(StaleReason::Inconsistent);
                }
                for output in &sidecar.outputs {
                    let path = self.resolve_output(stage, &output.path, out_dir);
                    match fsutil::file_len(&path) {
                        None => {
                            return Freshness::Stale(StaleReason::OutputMissing {
                                path: output.path.clone(),
                            });
                        }
                        Some(len) if len != output.bytes => {
                            return Freshness::Stale(StaleReason::OutputDamaged {
                                path: output.path.clone(),
                                bytes: len,
                                expected: output.bytes,
                            });
                        }
                        Some(_) => {}
                    }
                }
                Freshness::Fresh
            }
            (_, Some(sidecar)) => {
                Freshness::Stale(StaleReason::Changed(sidecar.inputs.changes(inputs)))
            }
            (Some(_), None) => Freshness::Stale(StaleReason::NoRecordOfInputs),
            (None, None) => Freshness::Stale(StaleReason::NoCachedResult),
        }
    }

    /// Output paths in a sidecar are relative to the stage folder, or to the output folder when
    /// they start with `out:` (the report files). Keeps absolute paths out of the cache.
    fn resolve_output(&self, stage: Stage, rel: &str, out_dir: &Path) -> PathBuf {
        match rel.strip_prefix("out:") {
            Some(name) => out_dir.join(name),
            None => self.stage_dir(stage).join(rel),
        }
    }

    /// Forgets a stage's fingerprint before it reruns, so a run killed half-way through it
    /// can never leave new artifacts under an old fingerprint or the reverse.
    pub fn invalidate(&self, stage: Stage) -> Result<()> {
        fsutil::remove_file_if_exists(&self.fingerprint_path(stage))
    }

    /// Writes a serialisable artifact atomically into the stage folder; returns its size.
    pub fn write_artifact<T: Serialize>(&self, stage: Stage, name: &str, value: &T) -> Result<u64> {
        let bytes = postcard::to_stdvec(value)
            .with_context(|| format!("could not serialise the {stage} artifact {name}"))?;
        self.write_bytes(stage, name, &seal(bytes))
    }

    /// Writes raw bytes atomically into the stage folder; returns their size.
    pub fn write_bytes(&self, stage: Stage, name: &str, bytes: &[u8]) -> Result<u64> {
        fsutil::write_atomic(&self.stage_dir(stage).join(name), bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Writes `parts` one after another into one file, atomically; returns its size.
    pub fn write_parts<'a>(
        &self,
        stage: Stage,
        name: &str,
        parts: impl Iterator<Item = &'a [u8]>,
    ) -> Result<u64> {
        fsutil::write_atomic_parts(&self.stage_dir(stage).join(name), parts)
    }

    /// Reads an artifact written by [`Cache::write_artifact`].
    pub fn read_artifact<T: DeserializeOwned>(&self, stage: Stage, name: &str) -> Result<T> {
        let path = self.stage_dir(stage).join(name);
        let bytes = fsutil::read(&path)?;
        decode_artifact(&bytes).with_context(|| format!("cache file {} is damaged", path.display()))
    }

    pub fn read_bytes(&self, stage: Stage, name: &str) -> Result<Vec<u8>> {
        fsutil::read(&self.stage_dir(stage).join(name))
    }

    /// Records a stage as done: sidecar first, fingerprint last.
    pub fn commit(&self, inputs: &FingerprintInputs, outputs: Vec<(String, u64)>) -> Result<()> {
        let fingerprint = inputs.fingerprint();
        let sidecar = Sidecar {
            fingerprint: fingerprint.clone(),
            inputs: inputs.clone(),
            outputs: outputs
                .into_iter()
                .map(|(path, bytes)| fingerprint::OutputFile { path, bytes })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&sidecar).context("could not serialise a sidecar")?;
        fsutil::write_atomic(&self.sidecar_path(inputs.stage), &json)?;
        fsutil::write_atomic(&self.fingerprint_path(inputs.stage), fingerprint.as_bytes())
    }
}

/// Appends the xxh3-64 digest of `bytes`. A cache file with a flipped bit, a torn write or
/// stray bytes could still deserialise (postcard has no redundancy) into a wrong artifact
/// whose indices point anywhere; the checksum turns that into "damaged, recompute".
pub fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
    bytes.extend_from_slice(&digest.to_le_bytes());
    bytes
}

/// Reads the bytes of an artifact written by [`Cache::write_artifact`]: checksum, then
/// postcard. Public for the fuzz target that feeds it arbitrary bytes.
pub fn decode_artifact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let body = unseal(bytes).context("its checksum does not match")?;
    postcard::from_bytes(body).context("its contents cannot be read")
}

/// The body of a sealed artifact, or `None` when its checksum does not match.
pub fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let split = bytes.len().checked_sub(8)?;
    let (body, digest) = bytes.split_at(split);
    (xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() == digest).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_in_an_artifact_is_damage_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache
            .write_artifact(Stage::Sample, "a.bin", &vec![1u32, 2, 3])
            .unwrap();
        let path = cache.stage_dir(Stage::Sample).join("a.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = cache
            .read_artifact::<Vec<u32>>(Stage::Sample, "a.bin")
            .unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        assert_eq!(unseal(&[1, 2, 3]), None, "shorter than a checksum");
    }
}

/// A `Vec<u8>` as one byte string (postcard writes it in one go, not byte by byte).
pub mod as_bytes {
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}
