//! Prints how the near-duplicate check sees pairs of image files: descriptor similarity,
//! and the best alignment straight and mirrored. For tuning `dedup` thresholds by hand:
//!
//!     cargo run --release --example dedup_probe -- a.png b.png [c.png d.png ...]

use aldente::stages::dedup::near;

fn main() -> anyhow::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    for pair in paths.chunks(2) {
        let [a, b] = pair else { break };
        let load = |p: &str| -> anyhow::Result<near::Picture> {
            let rgb = image::open(p)?.to_rgb8();
            Ok(near::canonical(rgb.as_raw(), rgb.width(), rgb.height()))
        };
        let (ga, gb) = (load(a)?, load(b)?);
        let describe = |g: &near::Picture, m: bool| {
            let mut d = vec![0f32; near::DESCRIPTOR_DIMS];
            near::descriptor(&g.grey, m, &mut d);
            d
        };
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        let da = describe(&ga, false);
        println!(
            "{a} {b}\n  similarity straight {:.3} mirrored {:.3}\n  straight {:?}\n  mirrored {:?}",
            dot(&da, &describe(&gb, false)),
            dot(&da, &describe(&gb, true)),
            near::align(&ga, &gb, false, 3),
            near::align(&ga, &gb, true, 3),
        );
    }
    Ok(())
}
