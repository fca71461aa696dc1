//! Fuzzes aldente's decode step (format sniffing, the pixel and memory limits, the JPEG path
//! through jpeg-decoder, everything else through the image crate, EXIF orientation, the
//! measurements) with arbitrary bytes: it must never panic, never decode past its limits, and
//! always give a reason a person can read when it refuses. Nothing is written to disk.
#![no_main]

use aldente::dataset::UnitEncoding;
use aldente::decode::{DecodeOptions, Outcome, decode};
use libfuzzer_sys::fuzz_target;

const OPTIONS: DecodeOptions = DecodeOptions {
    thumbnail_size: 16,
    max_pixels: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    // The name only decides between "unreadable" (claims to be an image) and "skipped".
    for name in ["fuzz/input.jpg", "fuzz/input"] {
        match decode(name, data, UnitEncoding::File, OPTIONS) {
            Outcome::Image(image) => {
                assert!(u64::from(image.width) * u64::from(image.height) <= OPTIONS.max_pixels);
                let (w, h) = image.thumb.dimensions();
                assert!(w >= 1 && h >= 1 && w <= 16 && h <= 16, "thumbnail {w}x{h}");
            }
            Outcome::Unreadable(reason) | Outcome::NotImage(reason) => {
                assert!(!reason.is_empty());
                // Reasons are for people: no Rust Debug output.
                assert!(!reason.contains("ChunkType {"), "{reason}");
            }
        }
    }
});
