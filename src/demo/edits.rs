//! Edits of a drawn picture, used to plant near duplicates (re-encoded, resized, shifted,
//! recoloured, flipped copies) and the dark and bright extremes.
//!
//! Invariants:
//! - An edit never modifies its source picture: the source stays an ordinary image of the
//!   dataset, and the edit returns a new one.
//! - Only [`near_copy`] draws from the generator (the side of a resize, the step and axis of a
//!   shift, in that order); the other edits are pure functions of the pixels.
//! - A near copy stays close enough to its source to be the near duplicate the truth says it is.
//!   [`near_copy`] returns file bytes rather than pixels, since one kind of near copy is a lossy
//!   re-encode.
//!
//! It never draws a new picture (that is `scene`) and never touches the disk.

use anyhow::Result;
use image::RgbImage;
use image::imageops::{self, FilterType as ResizeFilter};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::encode::{ORDINARY_PNG, encode_jpeg, encode_png};

/// The kinds of near duplicate the demo plants; [`NearKind::name`] is how the truth spells each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NearKind {
    Jpeg,
    Resize,
    Shift,
    Color,
    Flip,
}

impl NearKind {
    pub(super) const ALL: [NearKind; 5] = [
        NearKind::Jpeg,
        NearKind::Resize,
        NearKind::Shift,
        NearKind::Color,
        NearKind::Flip,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            NearKind::Jpeg => "jpeg",
            NearKind::Resize => "resize",
            NearKind::Shift => "shift",
            NearKind::Color => "color",
            NearKind::Flip => "flip",
        }
    }
}

/// A near copy of `pixels` of the given kind, as its file extension and bytes.
pub(super) fn near_copy(
    rng: &mut ChaCha8Rng,
    pixels: &RgbImage,
    kind: NearKind,
) -> Result<(&'static str, Vec<u8>)> {
    Ok(match kind {
        NearKind::Jpeg => ("jpg", encode_jpeg(pixels, 60)?),
        NearKind::Resize => {
            let side = if rng.random_bool(0.5) { 40 } else { 28 };
            let resized = imageops::resize(pixels, side, side, ResizeFilter::Triangle);
            ("png", encode_png(&resized, ORDINARY_PNG)?)
        }
        NearKind::Shift => {
            // Along one axis only: a diagonal move of 3 px each way would be a bigger change
            // than "a slightly different crop" is meant to be.
            let steps = [-3, -2, 2, 3];
            let step = steps[rng.random_range(0..steps.len())];
            let (dx, dy) = if rng.random_bool(0.5) {
                (step, 0)
            } else {
                (0, step)
            };
            ("png", encode_png(&shift(pixels, dx, dy), ORDINARY_PNG)?)
        }
        NearKind::Color => {
            let mut brighter = pixels.clone();
            for channel in brighter.iter_mut() {
                *channel = channel.saturating_add(20);
            }
            ("png", encode_png(&brighter, ORDINARY_PNG)?)
        }
        NearKind::Flip => (
            "png",
            encode_png(&imageops::flip_horizontal(pixels), ORDINARY_PNG)?,
        ),
    })
}

/// Moves the picture by (dx, dy), repeating the edge pixels into the uncovered border, the way
/// a crop-and-pad augmentation would.
fn shift(pixels: &RgbImage, dx: i32, dy: i32) -> RgbImage {
    let (width, height) = pixels.dimensions();
    RgbImage::from_fn(width, height, |x, y| {
        let from_x = (x as i32 - dx).clamp(0, width as i32 - 1) as u32;
        let from_y = (y as i32 - dy).clamp(0, height as i32 - 1) as u32;
        *pixels.get_pixel(from_x, from_y)
    })
}

/// Scales the picture down until the mean of each pixel's brightest channel is 0.045; every
/// other brightness measure (mean of channels, luma) is at most that.
pub(super) fn darken(pixels: &RgbImage) -> RgbImage {
    let brightest = pixels
        .pixels()
        .map(|p| f32::from(p.0.into_iter().max().unwrap_or(0)))
        .sum::<f32>()
        / (pixels.width() * pixels.height()) as f32
        / 255.0;
    let gain = (0.045 / brightest.max(1e-3)).min(1.0);
    let mut dark = pixels.clone();
    for channel in dark.iter_mut() {
        *channel = (f32::from(*channel) * gain).round() as u8;
    }
    dark
}

/// The mirror of [`darken`]: pulls every channel towards white until the mean of each pixel's
/// darkest channel is 0.955.
pub(super) fn brighten(pixels: &RgbImage) -> RgbImage {
    let darkest = pixels
        .pixels()
        .map(|p| f32::from(p.0.into_iter().min().unwrap_or(0)))
        .sum::<f32>()
        / (pixels.width() * pixels.height()) as f32
        / 255.0;
    let gain = (0.045 / (1.0 - darkest).max(1e-3)).min(1.0);
    let mut bright = pixels.clone();
    for channel in bright.iter_mut() {
        *channel = 255 - (f32::from(255 - *channel) * gain).round() as u8;
    }
    bright
}
