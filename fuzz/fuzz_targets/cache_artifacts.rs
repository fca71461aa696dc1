//! Fuzzes the cache readers: arbitrary bytes as a stored artifact (checksum, then postcard),
//! and arbitrary bytes behind a *valid* checksum, so the deserialisers and the checks after
//! them (the ingest table's thumbnail ranges, the stat cache's trust rule) see every shape of
//! input. A damaged cache must mean "recompute", never a panic. Nothing is written to disk.
#![no_main]

use aldente::cache::statcache::StatCache;
use aldente::cache::{decode_artifact, seal};
use aldente::stages::ingest::{IngestArtifact, Ingested, check_thumb_ranges};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sealed = seal(data.to_vec());
    for bytes in [data, sealed.as_slice()] {
        if let Ok(artifact) = decode_artifact::<IngestArtifact>(bytes)
            && check_thumb_ranges(&artifact).is_ok()
            && artifact.thumbs_len <= 1 << 20
        {
            let thumbs = vec![0u8; artifact.thumbs_len as usize];
            let ingested = Ingested::new(artifact, thumbs);
            for index in 0..ingested.artifact.images.len() {
                let thumb = ingested.thumb(index);
                assert_eq!(thumb.as_raw().len(), ingested.thumb_bytes(index).len());
            }
        }
        if let Ok(stat) = decode_artifact::<StatCache>(bytes) {
            let index = stat.index();
            for entry in &stat.entries {
                assert!(index.contains_key(entry.rel_path.as_str()));
                let _ = stat.trusts(entry, entry.size, entry.mtime_ns, entry.ino);
            }
        }
    }
});
