//! Bytes to pixels: decode one image, apply its EXIF orientation, and measure the per-image
//! facts every later stage relies on (size, colour type, pixel hash, channel sums at full
//! resolution, a small RGB thumbnail).
//!
//! Must never panic and never allocate without bound: from the header, before any pixel is
//! decoded, the pixel count is checked against `max_pixels` and the memory the decode needs
//! against a budget derived from it ([`memory_budget`]); big decodes take turns, so a dataset
//! of decompression bombs peaks under 1 GiB with the defaults. The `image` crate's
//! allocation limit stays on. Every failure comes back as a sentence a user can act on: what
//! is wrong, and what to do (re-download, convert, or raise `--max-pixels`).

use std::io::Cursor;

use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageReader, RgbImage};
use xxhash_rust::xxh3::Xxh3;

// The extensions live in `dataset` (a leaf, which reads shard members by them); decode
// depends on dataset, never the other way round.
use crate::dataset::UnitEncoding;
pub use crate::dataset::{IMAGE_EXTENSIONS, has_image_extension};

/// What decoding one unit gave.
#[derive(Debug)]
pub enum Outcome {
    Image(Box<Decoded>),
    /// Claims to be an image (by extension or magic bytes) but cannot be analysed.
    Unreadable(String),
    /// Not an image at all (a README, a CSV): listed as skipped.
    NotImage(String),
}

/// The facts measured on one decoded image.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub color: String,
    pub pixel_hash: u128,
    /// Per-channel sums of the 8-bit RGB values over all pixels, at full resolution.
    pub channel_sum: [u64; 3],
    /// Per-channel sums of squares of the 8-bit values.
    pub channel_sumsq: [u64; 3],
    pub thumb: RgbImage,
}

/// Limits and sizes for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecodeOptions {
    pub thumbnail_size: u32,
    pub max_pixels: u64,
}

/// The format a file's extension names, when this build can decode it. Used only where the
/// content has no signature: TGA files, whose header has no magic number.
fn extension_format(path: &str) -> Option<image::ImageFormat> {
    let (_, ext) = path.rsplit_once('.')?;
    image::ImageFormat::from_extension(ext).filter(|format| format.reading_enabled())
}

/// Decodes one unit. `path` is only used to word the reasons.
pub fn decode(path: &str, bytes: &[u8], encoding: UnitEncoding, options: DecodeOptions) -> Outcome {
    match encoding {
        UnitEncoding::CifarRecord => match crate::dataset::cifar::decode_record(bytes) {
            Some(rgb) => Outcome::Image(Box::new(measure(
                rgb,
                "cifar".into(),
                "RGB".into(),
                options,
            ))),
            None => Outcome::Unreadable(format!(
                "CIFAR record has {} bytes instead of 3,072",
                bytes.len()
            )),
        },
        UnitEncoding::IdxGrey { rows, cols } => {
            let pixels = u64::from(rows) * u64::from(cols);
            if pixels > options.max_pixels {
                return Outcome::Unreadable(format!(
                    "IDX record of {cols}x{rows} pixels is over the decode limit of {} \
                     pixels; raise --max-pixels to analyse it",
                    crate::text::thousands(options.max_pixels)
                ));
            }
            match crate::dataset::idx::decode_record(bytes, rows, cols) {
                Some(rgb) => {
                    Outcome::Image(Box::new(measure(rgb, "idx".into(), "grey".into(), options)))
                }
                None => Outcome::Unreadable(format!(
                    "IDX record has {} bytes instead of {cols}x{rows}",
                    bytes.len()
                )),
            }
        }
        UnitEncoding::File => decode_file(path, bytes, options),
    }
}

fn decode_file(path: &str, bytes: &[u8], options: DecodeOptions) -> Outcome {
    let claims_image = has_image_extension(path);
    if bytes.is_empty() {
        return if claims_image {
            Outcome::Unreadable("empty file (0 bytes)".into())
        } else {
            Outcome::NotImage("empty file (0 bytes)".into())
        };
    }
    let reader = match ImageReader::new(Cursor::new(bytes)).with_guessed_format() {
        Ok(mut reader) => {
            // The image crate's own allocation cap (512 MiB by default) follows our budget,
            // so raising --max-pixels is enough to analyse a big image.
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(memory_budget(options));
            reader.limits(limits);
            reader
        }
        Err(err) => return Outcome::Unreadable(format!("could not be read: {err}")),
    };
    // Content sniffing first: a JPEG named `.png` is still a JPEG. Some formats have no
    // signature to sniff (TGA); for those the extension decides, and the file is called
    // "not an image" only once that extension's decoder has refused it too.
    let mut reader = reader;
    let by_extension = reader.format().is_none();
    if by_extension && let Some(format) = extension_format(path) {
        reader.set_format(format);
    }
    let Some(format) = reader.format() else {
        let what = sniff(bytes);
        return if claims_image {
            Outcome::Unreadable(format!(
                "not an image despite its extension: the content {what}"
            ))
        } else {
            Outcome::NotImage(format!("not an image file (the content {what})"))
        };
    };
    let format_name = format!("{format:?}").to_lowercase();
    if format == image::ImageFormat::Jpeg && !by_extension {
        return decode_jpeg(bytes, options);
    }
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(err) if by_extension => {
            return Outcome::Unreadable(format!(
                "not an image despite its extension: the content {} and the {format_name} \
                 decoder refused it ({}); check what the file really is, or export it again",
                sniff(bytes),
                plain_detail(&err.to_string())
            ));
        }
        Err(err) => return Outcome::Unreadable(describe_error(&format_name, &err)),
    };
    let (width, height) = decoder.dimensions();
    if let Some(refusal) = over_limit(width, height, options) {
        return refusal;
    }
    if width == 0 || height == 0 {
        return Outcome::Unreadable(format!("image has no pixels ({width}x{height})"));
    }
    // ImageReader::decode reserves the decoded size against the limits; decoding through
    // `into_decoder` + `from_decoder` (needed for the orientation) does not, so check here:
    // the decoder's buffer, plus the RGB copy when the image is not 8-bit RGB already.
    let conversion = if decoder.color_type() == image::ColorType::Rgb8 {
        0
    } else {
        u64::from(width) * u64::from(height) * 3
    };
    if let Some(refusal) = over_memory(
        &format_name,
        width,
        height,
        decoder.total_bytes().saturating_add(conversion),
        options,
    ) {
        return refusal;
    }
    let _turn = big_decode_turn(decoder.total_bytes().saturating_add(conversion));
    let color = describe_color(decoder.original_color_type());
    let orientation = decoder.orientation().ok();
    let mut image = match DynamicImage::from_decoder(decoder) {
        Ok(image) => image,
        Err(err) => return Outcome::Unreadable(describe_error(&format_name, &err)),
    };
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let rgb = image.into_rgb8();
    Outcome::Image(Box::new(measure(rgb, format_name, color, options)))
}

/// JPEG through the `jpeg-decoder` crate (image-rs's port of libjpeg's algorithms), built
/// without its thread pool. Measured on the 60,000 CIFAR-10 JPEGs, on one core:
/// - the `image` crate's own JPEG path (zune-jpeg): 24,000 images/s; its wrapper parses the
///   headers three times per file;
/// - zune-jpeg called directly: 40,000/s, but its 4:2:0 chroma upsampling rounds half-up
///   twice, shifting chroma by about +0.25: the dataset means came out 0.0014 off an
///   independent libjpeg/numpy computation (target: 1e-3);
/// - jpeg-decoder without rayon: as fast as zune-jpeg on these files, and within 0.0005 of
///   libjpeg (libjpeg's "fancy" upsampling, unbiased rounding). With rayon (its default) it
///   starts worker threads for every image and runs at half the speed.
///
/// Any colour space comes out as RGB (CMYK included) and EXIF orientation is applied.
fn decode_jpeg(bytes: &[u8], options: DecodeOptions) -> Outcome {
    use jpeg_decoder::PixelFormat;

    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    if let Err(err) = decoder.read_info() {
        return Outcome::Unreadable(describe_jpeg_error(&err.to_string()));
    }
    let Some(info) = decoder.info() else {
        return Outcome::Unreadable("damaged jpeg: no image size in the header".into());
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let pixels = u64::from(width) * u64::from(height);
    if let Some(refusal) = over_limit(width, height, options) {
        return refusal;
    }
    if pixels == 0 {
        return Outcome::Unreadable(format!("image has no pixels ({width}x{height})"));
    }
    // A cut-off file can decode "successfully" with the missing part filled in; a missing
    // end-of-image marker is how a truncated download shows, so it is reported as such.
    if !has_jpeg_end(bytes) {
        return Outcome::Unreadable(
            "truncated jpeg: unexpected end of data (the end-of-image marker is missing); the \
             file was probably cut off: download or export it again"
                .into(),
        );
    }
    // jpeg-decoder holds one plane per component and then the interleaved output; anything
    // but RGB is converted into a third buffer.
    let (components, conversion) = match info.pixel_format {
        PixelFormat::RGB24 => (3, 0),
        PixelFormat::L8 => (1, 3),
        PixelFormat::L16 => (2, 3),
        PixelFormat::CMYK32 => (4, 3),
    };
    let needed = pixels.saturating_mul(2 * components + conversion);
    if let Some(refusal) = over_memory("jpeg", width, height, needed, options) {
        return refusal;
    }
    let _turn = big_decode_turn(needed);
    // Bounded by max_pixels above: at most 4 bytes per pixel (CMYK) are decoded.
    decoder.set_max_decoding_buffer_size((pixels as usize).saturating_mul(4).max(1 << 20));
    let raw = match decoder.decode() {
        Ok(raw) => raw,
        Err(err) => return Outcome::Unreadable(describe_jpeg_error(&err.to_string())),
    };
    let (color, rgb) = match info.pixel_format {
        PixelFormat::RGB24 => ("RGB", raw),
        PixelFormat::L8 => ("grey", raw.iter().flat_map(|&v| [v, v, v]).collect()),
        PixelFormat::L16 => (
            "grey 16-bit",
            raw.chunks_exact(2)
                .flat_map(|v| [v[0], v[0], v[0]])
                .collect(),
        ),
        PixelFormat::CMYK32 => ("CMYK", cmyk_to_rgb(&raw)),
    };
    let orientation = decoder
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk);
    let Some(mut rgb) = RgbImage::from_raw(width, height, rgb) else {
        return Outcome::Unreadable("damaged jpeg: decoded size does not match its header".into());
    };
    if let Some(orientation) = orientation
        && orientation != image::metadata::Orientation::NoTransforms
    {
        let mut dynamic = DynamicImage::ImageRgb8(rgb);
        dynamic.apply_orientation(orientation);
        rgb = dynamic.into_rgb8();
    }
    Outcome::Image(Box::new(measure(rgb, "jpeg".into(), color.into(), options)))
}

/// Adobe CMYK JPEGs store inverted values; this is the conversion the `image` crate used
/// with jpeg-decoder.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = 255 - u16::from(p[3]);
        for &v in &p[..3] {
            rgb.push(((255 - u16::from(v)) * k / 255) as u8);
        }
    }
    rgb
}

/// Whether a JPEG ends with its end-of-image marker (FF D9), allowing some trailing bytes
/// (padding, or data some cameras append).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn describe_jpeg_error(text: &str) -> String {
    let lower = text.to_lowercase();
    if lower.contains("eof") || lower.contains("end of") || lower.contains("no more bytes") {
        format!(
            "truncated jpeg: unexpected end of data ({text}); the file was probably cut off: \
             download or export it again"
        )
    } else {
        format!("damaged jpeg: {text}; the file is corrupted: download or export it again")
    }
}

/// The decode-limit check, made from the header before any pixel is decoded.
fn over_limit(width: u32, height: u32, options: DecodeOptions) -> Option<Outcome> {
    let pixels = u64::from(width) * u64::from(height);
    (pixels > options.max_pixels).then(|| {
        Outcome::Unreadable(format!(
            "image is {width}x{height} ({} pixels): over the decode limit of {} pixels; \
             raise --max-pixels to {pixels} or more (or ingest.max_pixels in aldente.toml) to \
             analyse it",
            crate::text::thousands(pixels),
            crate::text::thousands(options.max_pixels)
        ))
    })
}

/// The most memory one decode may use: 8 bytes per allowed pixel, at least 768 MiB. With the
/// default limit (100 M pixels) that is 800 MB, which keeps a decompression bomb's peak
/// under 1 GiB; raising --max-pixels raises it in step.
fn memory_budget(options: DecodeOptions) -> u64 {
    options.max_pixels.saturating_mul(8).max(768 << 20)
}

/// Decodes bigger than this take turns: one big image at a time (up to the budget) plus small
/// ones on the other threads keeps the peak under 1 GiB however many bombs a dataset holds.
const BIG_DECODE_BYTES: u64 = 128 << 20;

static BIG_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for the big-decode turn when `needed` is big; small decodes never wait.
fn big_decode_turn(needed: u64) -> Option<std::sync::MutexGuard<'static, ()>> {
    (needed > BIG_DECODE_BYTES).then(|| {
        BIG_DECODE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

/// The memory check: an image under the pixel limit can still need too much memory to decode
/// (16-bit RGBA takes 8 bytes per pixel, CMYK JPEGs three buffers).
fn over_memory(
    format: &str,
    width: u32,
    height: u32,
    needed: u64,
    options: DecodeOptions,
) -> Option<Outcome> {
    let budget = memory_budget(options);
    (needed > budget).then(|| {
        Outcome::Unreadable(format!(
            "{format} image is {width}x{height} and needs {} MiB to decode: over the memory \
             limit of {} MiB; raise --max-pixels to {} or more (or ingest.max_pixels in \
             aldente.toml) to analyse it",
            crate::text::thousands(needed.div_ceil(1 << 20)),
            crate::text::thousands(budget >> 20),
            needed.div_ceil(8)
        ))
    })
}

/// Measures the per-image facts on full-resolution RGB pixels.
fn measure(rgb: RgbImage, format: String, color: String, options: DecodeOptions) -> Decoded {
    let (width, height) = rgb.dimensions();
    let mut hasher = Xxh3::new();
    hasher.update(&width.to_le_bytes());
    hasher.update(&height.to_le_bytes());
    hasher.update(rgb.as_raw());
    let pixel_hash = hasher.digest128();

    let mut channel_sum = [0u64; 3];
    let mut channel_sumsq = [0u64; 3];
    for pixel in rgb.as_raw().chunks_exact(3) {
        for c in 0..3 {
            let v = u64::from(pixel[c]);
            channel_sum[c] += v;
            channel_sumsq[c] += v * v;
        }
    }
    let thumb = thumbnail(rgb, options.thumbnail_size);
    Decoded {
        format,
        width,
        height,
        color,
        pixel_hash,
        channel_sum,
        channel_sumsq,
        thumb,
    }
}

/// Shrinks to fit in `max_side` keeping the aspect ratio; small images are kept as they are.
pub fn thumbnail(rgb: RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    if w <= max_side && h <= max_side {
        return rgb;
    }
    let scale = f64::from(max_side) / f64::from(w.max(h));
    let tw = ((f64::from(w) * scale).round() as u32).clamp(1, max_side);
    let th = ((f64::from(h) * scale).round() as u32).clamp(1, max_side);
    image::imageops::thumbnail(&rgb, tw, th)
}

fn describe_color(color: ExtendedColorType) -> String {
    use ExtendedColorType as C;
    match color {
        C::L1 | C::L2 | C::L4 | C::L8 => "grey".into(),
        C::L16 => "grey 16-bit".into(),
        C::La1 | C::La2 | C::La4 | C::La8 => "grey+alpha".into(),
        C::La16 => "grey+alpha 16-bit".into(),
        C::Rgb1 | C::Rgb2 | C::Rgb4 | C::Rgb8 | C::Bgr8 => "RGB".into(),
        C::Rgb16 => "RGB 16-bit".into(),
        C::Rgb32F => "RGB float".into(),
        C::Rgba1 | C::Rgba2 | C::Rgba4 | C::Rgba8 | C::Bgra8 => "RGBA".into(),
        C::Rgba16 => "RGBA 16-bit".into(),
        C::Rgba32F => "RGBA float".into(),
        C::Cmyk8 => "CMYK".into(),
        C::Unknown(bits) => format!("palette/other ({bits} bits per pixel)"),
        other => format!("{other:?}"),
    }
}

/// Words a decoder error: which format, what went wrong, and what to do. The decoders'
/// own texts are cleaned of the parts meant for programmers (the image crate's "Format error
/// decoding Png:" prefix, the png crate's `ChunkType { type: IDAT, .. }` Debug output).
fn describe_error(format: &str, err: &image::ImageError) -> String {
    let detail = plain_detail(&err.to_string());
    let lower = detail.to_lowercase();
    if lower.contains("end of") || lower.contains("eof") || lower.contains("unexpected end") {
        format!(
            "truncated {format}: unexpected end of data ({detail}); the file was probably cut \
             off: download or export it again"
        )
    } else if matches!(err, image::ImageError::Limits(_)) {
        format!(
            "{format} needs more memory to decode than the safety limit allows ({detail}); \
             raise --max-pixels (or ingest.max_pixels in aldente.toml) if the image is real"
        )
    } else if lower.contains("crc") || lower.contains("checksum") {
        format!(
            "damaged {format}: a checksum does not match ({detail}); the file is corrupted: \
             download or export it again"
        )
    } else if matches!(err, image::ImageError::Unsupported(_)) {
        format!("unsupported {format}: {detail}; convert it to PNG or JPEG to have it analysed")
    } else {
        format!("damaged {format}: {detail}; the file is corrupted: download or export it again")
    }
}

/// A decoder's error text made readable: without the format prefix, with the png crate's
/// `ChunkType { type: IDAT, critical: .. }` shortened to `IDAT`, without a final full stop.
fn plain_detail(text: &str) -> String {
    let mut text = text.trim();
    if let Some(rest) = text.strip_prefix("Format error decoding ")
        && let Some((_, detail)) = rest.split_once(": ")
    {
        text = detail;
    } else if let Some(rest) = text.strip_prefix("Format error: ") {
        text = rest;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("ChunkType {") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find('}').map_or(after.len(), |i| i + 1);
        let name = after[..end]
            .split("type: ")
            .nth(1)
            .and_then(|t| t.split([',', ' ', '}']).next())
            .unwrap_or("a");
        out.push_str(name);
        rest = &after[end..];
    }
    out.push_str(rest);
    let out = out.trim_end_matches('.').trim().to_string();
    if out.is_empty() {
        "no details".to_string()
    } else {
        out
    }
}

/// A few words on what non-image bytes look like.
fn sniff(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(512)];
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &head[i..])
        .unwrap_or(head);
    let lower: Vec<u8> = start
        .iter()
        .take(15)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        "is an HTML page (a saved error page?)"
    } else if lower.starts_with(b"<") {
        "looks like XML or HTML"
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "is plain text"
    } else {
        "is not in any image format aldente can read"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: DecodeOptions = DecodeOptions {
        thumbnail_size: 64,
        max_pixels: 1_000_000,
    };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn small_png_is_measured_exactly() {
        let Outcome::Image(d) = decode("a.png", &png(4, 2), UnitEncoding::File, OPTIONS) else {
            panic!("expected an image");
        };
        assert_eq!((d.width, d.height, d.format.as_str()), (4, 2, "png"));
        // red = x: 0+1+2+3 per row, two rows; green = y: four pixels at 0, four at 1;
        // blue = 7 everywhere.
        assert_eq!(d.channel_sum, [12, 4, 56]);
        assert_eq!(d.thumb.dimensions(), (4, 2));
    }

    #[test]
    fn big_image_gets_a_bounded_thumbnail() {
        let Outcome::Image(d) = decode("a.png", &png(200, 100), UnitEncoding::File, OPTIONS) else {
            panic!("expected an image");
        };
        assert_eq!(d.thumb.dimensions(), (64, 32));
    }

    #[test]
    fn over_the_pixel_limit_is_unreadable_with_the_setting_named() {
        let options = DecodeOptions {
            max_pixels: 100,
            ..OPTIONS
        };
        let Outcome::Unreadable(why) = decode("a.png", &png(20, 20), UnitEncoding::File, options)
        else {
            panic!("expected unreadable");
        };
        assert!(why.contains("--max-pixels"), "{why}");
        assert!(why.contains("ingest.max_pixels"), "{why}");
    }

    #[test]
    fn truncated_and_text_files_are_told_apart() {
        let bytes = png(32, 32);
        let Outcome::Unreadable(why) = decode(
            "a.png",
            &bytes[..bytes.len() / 2],
            UnitEncoding::File,
            OPTIONS,
        ) else {
            panic!("expected unreadable");
        };
        assert!(why.contains("png"), "{why}");
        let Outcome::Unreadable(why) =
            decode("x.jpg", b"<html>404</html>", UnitEncoding::File, OPTIONS)
        else {
            panic!("expected unreadable");
        };
        assert!(why.contains("HTML"), "{why}");
        assert!(matches!(
            decode("notes.txt", b"hello", UnitEncoding::File, OPTIONS),
            Outcome::NotImage(_)
        ));
    }

    // Regression guard: a PNG with a bad CRC was listed as "Format error decoding Png: CRC
    // error: ... while decoding ChunkType { type: IDAT, critical: true, .. } chunk.".
    #[test]
    fn png_errors_read_as_sentences_not_debug_output() {
        let mut bytes = png(8, 8);
        let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(bytes[idat - 4..idat].try_into().unwrap()) as usize;
        bytes[idat + 4 + len] ^= 0xFF;
        let Outcome::Unreadable(why) = decode("a.png", &bytes, UnitEncoding::File, OPTIONS) else {
            panic!("expected unreadable");
        };
        assert!(
            why.starts_with("damaged png: a checksum does not match"),
            "{why}"
        );
        assert!(why.contains("IDAT") && !why.contains('{'), "{why}");
        assert!(why.contains("download or export it again"), "{why}");
    }

    #[test]
    fn under_the_pixel_limit_but_over_the_memory_budget_is_refused_before_decoding() {
        // 16-bit RGBA: 8 bytes per pixel, plus 3 for the RGB copy.
        let img = image::ImageBuffer::<image::Rgba<u16>, _>::new(300, 300);
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba16(img)
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        let options = DecodeOptions {
            max_pixels: 90_000,
            ..OPTIONS
        };
        assert_eq!(memory_budget(options), 768 << 20, "the floor applies");
        assert!(matches!(
            decode("a.png", &bytes, UnitEncoding::File, options),
            Outcome::Image(_)
        ));
        let why = over_memory("png", 30000, 30000, 30000 * 30000 * 11, options);
        let Some(Outcome::Unreadable(why)) = why else {
            panic!("expected a refusal");
        };
        assert!(why.contains("--max-pixels"), "{why}");
    }

    fn tga(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Tga)
            .unwrap();
        bytes
    }

    // Regression guard: TGA has no magic number, so content sniffing found nothing and every
    // valid TGA was refused as "not an image despite its extension".
    #[test]
    fn tga_without_a_signature_is_decoded_by_its_extension() {
        let bytes = tga(4, 2);
        assert!(
            image::guess_format(&bytes).is_err(),
            "the test needs a file sniffing cannot recognise"
        );
        let Outcome::Image(d) = decode("a.TGA", &bytes, UnitEncoding::File, OPTIONS) else {
            panic!("expected an image");
        };
        assert_eq!((d.width, d.height, d.format.as_str()), (4, 2, "tga"));
        assert_eq!(d.channel_sum, [12, 4, 56]);
        let Outcome::Image(p) = decode("a.png", &png(4, 2), UnitEncoding::File, OPTIONS) else {
            panic!("expected an image");
        };
        assert_eq!(d.pixel_hash, p.pixel_hash, "same pixels as the PNG");
    }

    #[test]
    fn garbage_with_an_extension_is_not_an_image_only_once_its_decoder_refuses_it() {
        let Outcome::Unreadable(why) = decode(
            "notes.tga",
            b"this is a note, not a picture",
            UnitEncoding::File,
            OPTIONS,
        ) else {
            panic!("expected unreadable");
        };
        assert!(
            why.starts_with("not an image despite its extension"),
            "{why}"
        );
        assert!(
            why.contains("plain text") && why.contains("tga decoder"),
            "{why}"
        );
        // The same bytes without an image extension are not an image at all, and a TGA
        // without the extension that names it cannot be recognised.
        assert!(matches!(
            decode("notes", b"this is a note", UnitEncoding::File, OPTIONS),
            Outcome::NotImage(_)
        ));
        assert!(matches!(
            decode("picture.bin", &tga(4, 2), UnitEncoding::File, OPTIONS),
            Outcome::NotImage(_)
        ));
        // A TGA whose header is sound but whose pixels are cut off is a damaged TGA.
        let bytes = tga(32, 32);
        let Outcome::Unreadable(why) = decode(
            "cut.tga",
            &bytes[..bytes.len() / 2],
            UnitEncoding::File,
            OPTIONS,
        ) else {
            panic!("expected unreadable");
        };
        assert!(why.contains("tga"), "{why}");
    }

    #[test]
    fn same_pixels_same_hash_different_pixels_different_hash() {
        let a = decode("a.png", &png(8, 8), UnitEncoding::File, OPTIONS);
        let b = decode("b.png", &png(8, 8), UnitEncoding::File, OPTIONS);
        let c = decode("c.png", &png(8, 9), UnitEncoding::File, OPTIONS);
        let hash = |o: &Outcome| match o {
            Outcome::Image(d) => d.pixel_hash,
            _ => panic!(),
        };
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
    }
}
