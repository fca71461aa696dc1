//! File bytes for the demo's pictures: RGB PNGs with a chosen compression and filter, greyscale
//! PNGs, JPEGs, and a JPEG cut short so that it cannot be decoded.
//!
//! Invariants:
//! - Every function is a pure function of its pixels and settings: the same input gives the same
//!   bytes, and [`ORDINARY_PNG`] and each of [`PIXEL_COPY_PNG`] give different bytes for the same
//!   pixels (the plan checks this for every exact-pixel copy).
//! - [`truncated_jpeg`] returns bytes that no decoder accepts, or an error.
//!
//! It never draws from the generator and never touches the disk.

use anyhow::{Context, Result, ensure};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{ExtendedColorType, GrayImage, ImageEncoder, RgbImage};

/// Quality of the ordinary JPEGs; the JPEG near copies use a lower one.
pub(super) const JPEG_QUALITY: u8 = 90;

/// How ordinary PNGs are compressed; exact-pixel copies use the other settings below, so that
/// the same pixels come out as different bytes.
pub(super) const ORDINARY_PNG: (CompressionType, PngFilter) =
    (CompressionType::Default, PngFilter::Adaptive);
pub(super) const PIXEL_COPY_PNG: [(CompressionType, PngFilter); 2] = [
    (CompressionType::Best, PngFilter::NoFilter),
    (CompressionType::Fast, PngFilter::Paeth),
];

pub(super) fn encode_png(
    pixels: &RgbImage,
    (compression, filter): (CompressionType, PngFilter),
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, compression, filter)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::Rgb8,
        )
        .context("encoding a demo image as PNG")?;
    Ok(bytes)
}

pub(super) fn encode_grey_png(pixels: &GrayImage) -> Result<Vec<u8>> {
    let (compression, filter) = ORDINARY_PNG;
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, compression, filter)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::L8,
        )
        .context("encoding a demo image as greyscale PNG")?;
    Ok(bytes)
}

pub(super) fn encode_jpeg(pixels: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(
            pixels,
            pixels.width(),
            pixels.height(),
            ExtendedColorType::Rgb8,
        )
        .context("encoding a demo image as JPEG")?;
    Ok(bytes)
}

/// A JPEG of `pixels` cut short so that it cannot be decoded, for the unreadable plant.
pub(super) fn truncated_jpeg(pixels: &RgbImage) -> Result<Vec<u8>> {
    let whole = encode_jpeg(pixels, JPEG_QUALITY)?;
    // The decoder accepts a JPEG cut anywhere in its compressed data (it greys out the
    // missing rows), so the cut goes halfway into the headers, before the start of scan.
    let start_of_scan = whole
        .windows(2)
        .position(|marker| marker == [0xFF, 0xDA])
        .context("the JPEG encoder wrote no start-of-scan marker")?;
    let truncated = whole[..start_of_scan / 2].to_vec();
    ensure!(
        image::load_from_memory(&truncated).is_err(),
        "a truncated JPEG still decodes, so it cannot be planted as unreadable"
    );
    Ok(truncated)
}
