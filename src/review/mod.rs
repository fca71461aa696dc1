//! The review loop: acting on the decisions a person made in the report.
//!
//! The report lists findings (near-duplicate pairs, label-issue candidates); the person decides
//! on each and exports `decisions.json` ([`decisions`]). `aldente apply` ([`apply`]) turns the
//! decisions that are file changes into moves inside the dataset (relabel: into another class
//! folder, split kept) or out of it (remove: into a quarantine folder beside the dataset,
//! never deleted), with an undo log; the decisions that are judgements ("not a duplicate",
//! "label is correct") go into the review file at the dataset root ([`reviewfile`]), keyed by
//! content hash so that they survive moves, which the next report reads.
//!
//! Invariants: nothing is ever deleted; no decision touches a file outside the dataset (or
//! the quarantine); every decision that is not carried out is refused with a reason
//! ([`apply::Refusal`]), and the others still apply.
//!
//! This module reads and moves dataset files, so only `lib.rs` (the `apply` command) and
//! the pipeline's render step (which reads the review file) call it; it imports nothing of
//! the pipeline, the stages or the report.

pub mod apply;
pub mod decisions;
pub mod reviewfile;

/// Exit code of `aldente apply` when some decisions were refused (the rest applied).
pub const EXIT_REFUSED: u8 = 4;

/// A content hash as written in decisions.json, the review file and images.parquet: the
/// xxh3-128 of the file's bytes, 32 lower-case hex digits.
pub fn hash_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// The content hash of a file's bytes, in [`hash_hex`]'s form (what ingest records).
pub fn content_hash_of(bytes: &[u8]) -> String {
    hash_hex(xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Parses [`hash_hex`]'s form (any case); `None` for anything else.
pub fn parse_hash(text: &str) -> Option<u128> {
    // `from_str_radix` alone would also take a leading `+`.
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_bad_ones_are_refused() {
        let hash = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
        assert_eq!(parse_hash(&hash_hex(hash)), Some(hash));
        assert_eq!(parse_hash(&hash_hex(hash).to_uppercase()), Some(hash));
        assert_eq!(parse_hash("abc"), None);
        assert_eq!(parse_hash("+123456789abcdef0123456789abcdef"), None);
        assert_eq!(parse_hash(&"g".repeat(32)), None);
    }
}
