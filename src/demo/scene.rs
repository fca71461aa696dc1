//! Pictures of a class: a random scene (a near-grey backdrop with a blotchy mottle and a soft
//! spotlight, and the class's shapes in colours from its hue band) rendered with supersampling
//! and per-pixel noise, and the nearly uniform picture planted as featureless.
//!
//! Invariants:
//! - Arithmetic and `sqrt` only, no trigonometry or `exp`, so the pixels are the same on every
//!   platform that follows IEEE 754.
//! - [`draw`] consumes the generator in a fixed order: the scene's geometry and colours first,
//!   then one bulk draw of noise bytes. Changing either changes every later file of the dataset.
//! - Each class keeps to its own band of hues and its own shapes, and backgrounds are never near
//!   black or white, so ordinary pictures are separable by class and never brightness extremes.
//!
//! It never edits an existing picture (that is `edits`) and never encodes or writes one.

use image::{Rgb, RgbImage};
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

use super::CLASSES;

/// Centre of each class's hue band, in degrees. Spacing the bands 60 degrees apart makes the
/// classes separable by colour alone, so a kNN on simple features recovers the planted labels.
const CLASS_HUES: [f32; 6] = [300.0, 0.0, 180.0, 240.0, 120.0, 60.0];
const HUE_JITTER: f32 = 18.0;

/// Side of the square in which shapes are designed; other image sizes stretch it.
const DESIGN: f32 = 32.0;
/// Per-pixel, per-channel noise amplitude, in 0..255 levels.
const NOISE: i32 = 8;

/// A shape in design coordinates (a 32x32 square, stretched to the image's size).
enum Shape {
    Disc {
        cx: f32,
        cy: f32,
        radius: f32,
    },
    Ring {
        cx: f32,
        cy: f32,
        outer: f32,
        inner: f32,
    },
    /// A square turned by the angle whose cosine and sine are `cos` and `sin`.
    Square {
        cx: f32,
        cy: f32,
        half: f32,
        cos: f32,
        sin: f32,
    },
    Triangle {
        corners: [(f32, f32); 3],
    },
    /// Parallel bands across the whole image, perpendicular to the unit vector (nx, ny).
    Stripes {
        nx: f32,
        ny: f32,
        period: f32,
        duty: f32,
        phase: f32,
    },
    Checkers {
        cell: f32,
        ox: f32,
        oy: f32,
        cos: f32,
        sin: f32,
    },
}

impl Shape {
    fn contains(&self, u: f32, v: f32) -> bool {
        match *self {
            Shape::Disc { cx, cy, radius } => {
                (u - cx) * (u - cx) + (v - cy) * (v - cy) <= radius * radius
            }
            Shape::Ring {
                cx,
                cy,
                outer,
                inner,
            } => {
                let d2 = (u - cx) * (u - cx) + (v - cy) * (v - cy);
                d2 <= outer * outer && d2 >= inner * inner
            }
            Shape::Square {
                cx,
                cy,
                half,
                cos,
                sin,
            } => {
                let (du, dv) = (u - cx, v - cy);
                (du * cos + dv * sin).abs() <= half && (dv * cos - du * sin).abs() <= half
            }
            Shape::Triangle { corners } => {
                let side = |(ax, ay): (f32, f32), (bx, by): (f32, f32)| {
                    (bx - ax) * (v - ay) - (by - ay) * (u - ax)
                };
                let (a, b, c) = (
                    side(corners[0], corners[1]),
                    side(corners[1], corners[2]),
                    side(corners[2], corners[0]),
                );
                (a >= 0.0 && b >= 0.0 && c >= 0.0) || (a <= 0.0 && b <= 0.0 && c <= 0.0)
            }
            Shape::Stripes {
                nx,
                ny,
                period,
                duty,
                phase,
            } => {
                let t = (u * nx + v * ny) / period + phase;
                t - t.floor() < duty
            }
            Shape::Checkers {
                cell,
                ox,
                oy,
                cos,
                sin,
            } => {
                let (ru, rv) = (u * cos + v * sin + ox, v * cos - u * sin + oy);
                ((ru / cell).floor() + (rv / cell).floor()).rem_euclid(2.0) < 0.5
            }
        }
    }
}

const MOTTLE_CELL: f32 = 8.0;
const MOTTLE_GRID: usize = 5;

struct Light {
    cx: f32,
    cy: f32,
    radius: f32,
    strength: f32,
}

struct Scene {
    /// Background colour at the design centre, 0..1 per channel.
    background: [f32; 3],
    /// Brightness added to the background at the corners of a grid of `MOTTLE_CELL`-unit cells,
    /// blended in between: a blotchy backdrop, different in every image, so that pictures with
    /// a small shape on a plain ground do not all shrink to the same thumbnail.
    mottle: [[f32; MOTTLE_GRID]; MOTTLE_GRID],
    /// A soft spotlight over the whole picture, dimming it away from the centre (cx, cy), by up
    /// to `strength` at distances well beyond `radius`. It varies the low frequencies that
    /// thumbnails and perceptual hashes see; without it two fine checkerboards in similar
    /// colours shrink to the same flat thumbnail and look like near duplicates nobody planted.
    light: Light,
    /// Drawn in order; later shapes cover earlier ones.
    shapes: Vec<(Shape, [f32; 3])>,
}

impl Light {
    /// Multiplier of the scene's colours at (u, v).
    fn at(&self, u: f32, v: f32) -> f32 {
        let distance2 = (u - self.cx) * (u - self.cx) + (v - self.cy) * (v - self.cy);
        1.0 - self.strength + self.strength / (1.0 + distance2 / (self.radius * self.radius))
    }
}

impl Scene {
    /// The colour of the topmost shape covering (u, v), if any.
    fn shape_colour_at(&self, u: f32, v: f32) -> Option<[f32; 3]> {
        for (shape, colour) in self.shapes.iter().rev() {
            if shape.contains(u, v) {
                return Some(*colour);
            }
        }
        None
    }

    fn mottle_at(&self, u: f32, v: f32) -> f32 {
        let (gu, gv) = (u / MOTTLE_CELL, v / MOTTLE_CELL);
        let last = MOTTLE_GRID - 2;
        let (iu, iv) = ((gu as usize).min(last), (gv as usize).min(last));
        let (fu, fv) = (gu - iu as f32, gv - iv as f32);
        let row = |r: &[f32; MOTTLE_GRID]| r[iu] * (1.0 - fu) + r[iu + 1] * fu;
        row(&self.mottle[iv]) * (1.0 - fv) + row(&self.mottle[iv + 1]) * fv
    }
}

pub(super) fn draw(rng: &mut ChaCha8Rng, class: usize, width: u32, height: u32) -> RgbImage {
    let scene = scene(rng, class);
    render(rng, &scene, width, height)
}

/// One mid-bright colour from the class's band with a one-level flicker, so the file is not
/// trivially constant but carries almost no information.
pub(super) fn nearly_uniform(rng: &mut ChaCha8Rng, class: usize) -> RgbImage {
    let hue = CLASS_HUES[class] + rng.random_range(-HUE_JITTER..HUE_JITTER);
    let base = hsv_to_rgb(hue, 0.5, 0.6);
    let base = base.map(|c| (c * 255.0).round() as u8);
    RgbImage::from_fn(32, 32, |_, _| {
        Rgb(base.map(|c| c.saturating_add(u8::from(rng.random_bool(0.2)))))
    })
}

fn scene(rng: &mut ChaCha8Rng, class: usize) -> Scene {
    // Mostly dark backgrounds, some light ones, never near black or white: the dark and bright
    // plants must be the only images at the ends of the brightness scale.
    let value = if rng.random_bool(0.75) {
        rng.random_range(0.2..0.45)
    } else {
        rng.random_range(0.7..0.85)
    };
    let background = hsv_to_rgb(
        rng.random_range(0.0..360.0),
        rng.random_range(0.0..0.1),
        value,
    );
    let mut mottle = [[0.0; MOTTLE_GRID]; MOTTLE_GRID];
    for lift in mottle.iter_mut().flatten() {
        *lift = rng.random_range(-0.3..0.3);
    }
    let light = Light {
        cx: rng.random_range(0.0..DESIGN),
        cy: rng.random_range(0.0..DESIGN),
        radius: rng.random_range(8.0..20.0),
        strength: rng.random_range(0.0..0.35),
    };
    let mut shapes = Vec::new();
    match CLASSES[class] {
        "circles" => {
            for _ in 0..rng.random_range(1..=3) {
                let radius = rng.random_range(4.5..9.5);
                let shape = Shape::Disc {
                    cx: rng.random_range(3.0..29.0),
                    cy: rng.random_range(3.0..29.0),
                    radius,
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "rings" => {
            for _ in 0..rng.random_range(1..=2) {
                let outer = rng.random_range(6.0..13.0);
                let shape = Shape::Ring {
                    cx: rng.random_range(8.0..24.0),
                    cy: rng.random_range(8.0..24.0),
                    outer,
                    inner: outer - rng.random_range(2.0..3.5),
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "squares" => {
            for _ in 0..rng.random_range(1..=3) {
                let (cos, sin) = small_rotation(rng, 0.27);
                let shape = Shape::Square {
                    cx: rng.random_range(4.0..28.0),
                    cy: rng.random_range(4.0..28.0),
                    half: rng.random_range(3.5..8.0),
                    cos,
                    sin,
                };
                shapes.push((shape, class_colour(rng, class)));
            }
        }
        "triangles" => {
            for _ in 0..rng.random_range(1..=2) {
                let (cx, cy) = (rng.random_range(8.0..24.0), rng.random_range(8.0..24.0));
                let radius = rng.random_range(6.0..13.0);
                let (cos, sin) = unit_vector(rng);
                // The other two corners are the first turned by 120 and 240 degrees.
                let (c120, s120) = (-0.5, 3f32.sqrt() / 2.0);
                let turn = |(x, y): (f32, f32)| (x * c120 - y * s120, x * s120 + y * c120);
                let first = (cos * radius, sin * radius);
                let second = turn(first);
                let third = turn(second);
                let mut corners = [first, second, third];
                for corner in &mut corners {
                    corner.0 += cx + rng.random_range(-1.5..1.5);
                    corner.1 += cy + rng.random_range(-1.5..1.5);
                }
                shapes.push((Shape::Triangle { corners }, class_colour(rng, class)));
            }
        }
        "stripes" => {
            let (nx, ny) = unit_vector(rng);
            let shape = Shape::Stripes {
                nx,
                ny,
                period: rng.random_range(6.0..12.0),
                duty: rng.random_range(0.35..0.65),
                phase: rng.random_range(0.0..1.0),
            };
            shapes.push((shape, class_colour(rng, class)));
        }
        "checkers" => {
            let (cos, sin) = small_rotation(rng, 0.18);
            let cell = rng.random_range(5.0..10.0);
            let shape = Shape::Checkers {
                cell,
                ox: rng.random_range(0.0..cell * 2.0),
                oy: rng.random_range(0.0..cell * 2.0),
                cos,
                sin,
            };
            shapes.push((shape, class_colour(rng, class)));
        }
        other => unreachable!("no drawing for class {other}"),
    }
    Scene {
        background,
        mottle,
        light,
        shapes,
    }
}

/// Renders with 2x2 supersampling (soft edges, like a photographed object) and adds noise, so
/// that no two images are pixel-alike even when their geometry happens to be.
///
/// Plain loops and one bulk draw of noise bytes: this is the only hot loop of the demo, and
/// tests and `aldente demo` in a debug build run it unoptimised.
fn render(rng: &mut ChaCha8Rng, scene: &Scene, width: u32, height: u32) -> RgbImage {
    const SUBSAMPLES: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    let (scale_u, scale_v) = (DESIGN / width as f32, DESIGN / height as f32);
    let mut noise = vec![0u8; width as usize * height as usize * 3];
    rng.fill_bytes(&mut noise);
    let mut image = RgbImage::new(width, height);
    let channels: &mut [u8] = &mut image;
    let mut i = 0;
    for y in 0..height {
        for x in 0..width {
            // Light and mottle vary slowly, so the pixel centre stands for all four samples.
            let (centre_u, centre_v) = ((x as f32 + 0.5) * scale_u, (y as f32 + 0.5) * scale_v);
            let lit = scene.light.at(centre_u, centre_v) / 4.0 * 255.0;
            let lift = scene.mottle_at(centre_u, centre_v);
            let [r, g, b] = scene.background;
            let backdrop = [r + lift, g + lift, b + lift];
            let mut sum = [0f32; 3];
            for (sx, sy) in SUBSAMPLES {
                let (u, v) = ((x as f32 + sx) * scale_u, (y as f32 + sy) * scale_v);
                let [r, g, b] = scene.shape_colour_at(u, v).unwrap_or(backdrop);
                sum = [sum[0] + r, sum[1] + g, sum[2] + b];
            }
            for total in sum {
                // Uniform in -NOISE..=NOISE, but for -NOISE coming up once more in 256 draws.
                let jitter = i32::from(noise[i]) % (2 * NOISE + 1) - NOISE;
                let level = (total * lit).round() as i32 + jitter;
                channels[i] = level.clamp(0, 255) as u8;
                i += 1;
            }
        }
    }
    image
}

fn class_colour(rng: &mut ChaCha8Rng, class: usize) -> [f32; 3] {
    hsv_to_rgb(
        CLASS_HUES[class] + rng.random_range(-HUE_JITTER..HUE_JITTER),
        rng.random_range(0.55..0.95),
        rng.random_range(0.6..0.95),
    )
}

/// A uniformly random direction, by rejection sampling in the unit disc (no trigonometry, so
/// the result is the same on every platform).
fn unit_vector(rng: &mut ChaCha8Rng) -> (f32, f32) {
    loop {
        let (x, y): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let length = (x * x + y * y).sqrt();
        if (0.25..=1.0).contains(&length) {
            return (x / length, y / length);
        }
    }
}

/// Cosine and sine of a random angle of at most about `max_slope` radians either way.
fn small_rotation(rng: &mut ChaCha8Rng, max_slope: f32) -> (f32, f32) {
    let slope: f32 = rng.random_range(-max_slope..max_slope);
    let length = (1.0 + slope * slope).sqrt();
    (1.0 / length, slope / length)
}

/// `hue` in degrees (any value, wrapped), `saturation` and `value` in 0..1.
fn hsv_to_rgb(hue: f32, saturation: f32, value: f32) -> [f32; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let chroma = value * saturation;
    let x = chroma * (1.0 - (h.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = value - chroma;
    [r + m, g + m, b + m]
}
