//! Duplicates: exact groups, near pairs with their kind, leakage across splits and label
//! conflicts, on the demo dataset (against its truth file) and on a hand-made fixture.

use std::collections::BTreeSet;
use std::path::Path;

use image::{Rgb, RgbImage, imageops};
use serde_json::Value;

use crate::common::{Fixture, strings};

fn unordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The (`first`, `second`) string fields of every object in a JSON list.
fn string_pairs(list: &Value, first: &str, second: &str) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[first].as_str().unwrap().to_string(),
                p[second].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sorted_group(group: &Value) -> Vec<String> {
    let mut members: Vec<String> = group
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().or(m["path"].as_str()).unwrap().to_string())
        .collect();
    members.sort();
    members
}

/// The target: every planted duplicate is found, and nothing else is flagged.
#[test]
fn the_demo_duplicates_are_exactly_the_planted_ones() {
    let fx = Fixture::new();
    let (run, truth) = fx.demo();
    let duplicates = &run.report_json()["duplicates"];

    let planted_near: BTreeSet<((String, String), String)> = truth["near_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(truth["leakage"].as_array().unwrap())
        .filter(|p| p["kind"] != "exact")
        .map(|p| {
            let kind = if p["kind"] == "flip" {
                "flipped"
            } else {
                "near"
            };
            (
                unordered(p["original"].as_str().unwrap(), p["copy"].as_str().unwrap()),
                kind.to_string(),
            )
        })
        .collect();
    let found_near: BTreeSet<((String, String), String)> = duplicates["near_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                unordered(p["a"].as_str().unwrap(), p["b"].as_str().unwrap()),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found_near, planted_near);

    let planted_exact: BTreeSet<Vec<String>> = truth["exact_byte_groups"]
        .as_array()
        .unwrap()
        .iter()
        .chain(truth["exact_pixel_groups"].as_array().unwrap())
        .map(sorted_group)
        .collect();
    let found_exact: BTreeSet<Vec<String>> = duplicates["exact_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(sorted_group)
        .collect();
    assert_eq!(found_exact, planted_exact);

    // Leakage: the test copy first, its train original second.
    let planted_leaks = string_pairs(&truth["leakage"], "copy", "original");
    let found_leaks = string_pairs(&duplicates["cross_split"], "a", "b");
    assert_eq!(found_leaks, planted_leaks);

    let planted_conflicts: BTreeSet<Vec<String>> = truth["conflicting_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(sorted_group)
        .collect();
    let found_conflicts: BTreeSet<Vec<String>> = duplicates["conflicting_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(sorted_group)
        .collect();
    assert_eq!(found_conflicts, planted_conflicts);

    // The leakage alert leads the overview.
    let html = run.html();
    let alerts = html.find("class=\"alerts\"").expect("alerts list");
    let first_alert = &html[alerts..alerts + 400];
    assert!(
        first_alert.contains("`test` images also appear in `train` (4 exact, 4 near copies)"),
        "{first_alert}"
    );
}

/// A smooth, photo-like picture: soft coloured blobs on a gradient, a little noise.
fn scene(seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 10_000) as f32 / 10_000.0
    };
    let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..5)
        .map(|_| {
            (
                next() * 40.0,
                next() * 40.0,
                4.0 + next() * 8.0,
                [
                    next() * 240.0 - 120.0,
                    next() * 240.0 - 120.0,
                    next() * 240.0 - 120.0,
                ],
            )
        })
        .collect();
    let tilt = next() * 3.0 - 1.5;
    RgbImage::from_fn(40, 40, |x, y| {
        let mut pixel = [0u8; 3];
        for (c, value) in pixel.iter_mut().enumerate() {
            let mut v = 128.0 + tilt * (x as f32 - 20.0) + (next() - 0.5) * 12.0;
            for &(bx, by, r, amp) in &blobs {
                let d2 = (x as f32 - bx).powi(2) + (y as f32 - by).powi(2);
                v += amp[c] * (-d2 / (r * r)).exp();
            }
            *value = v.clamp(0.0, 255.0) as u8;
        }
        Rgb(pixel)
    })
}

fn save(root: &Path, rel: &str, image: &RgbImage) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save(&path).unwrap();
}

fn near_pairs(report: &Value) -> BTreeSet<((String, String), String)> {
    report["duplicates"]["near_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                unordered(p["a"].as_str().unwrap(), p["b"].as_str().unwrap()),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shifted_brightened_and_mirrored_copies_are_found_with_their_kind() {
    let fx = Fixture::new();
    let data = fx.data();
    let original = scene(1);
    save(&data, "train/cat/a.png", &original);
    // Moved 2 px right and 1 down, edges repeated, and saved as a JPEG in the test split.
    let shifted = RgbImage::from_fn(40, 40, |x, y| {
        *original.get_pixel(x.saturating_sub(2), y.saturating_sub(1))
    });
    save(&data, "test/cat/a_moved.jpg", &shifted);
    // Its mirror image, filed under another class.
    save(
        &data,
        "train/dog/a_mirror.png",
        &imageops::flip_horizontal(&original),
    );
    let second = scene(2);
    save(&data, "train/cat/b.png", &second);
    let mut brighter = second.clone();
    brighter
        .pixels_mut()
        .for_each(|p| p.0 = p.0.map(|v| v.saturating_add(30)));
    save(&data, "train/cat/b_bright.png", &brighter);
    // A resized copy at 56 px.
    let third = scene(3);
    save(&data, "train/dog/c.png", &third);
    let bigger = imageops::resize(&third, 56, 56, imageops::FilterType::Triangle);
    save(&data, "train/dog/c_big.png", &bigger);
    // Unrelated pictures, none of them a copy of another.
    for seed in 10..30u32 {
        let split = if seed % 4 == 0 { "test" } else { "train" };
        let class = if seed % 2 == 0 { "cat" } else { "dog" };
        save(
            &data,
            &format!("{split}/{class}/other{seed}.png"),
            &scene(seed),
        );
    }
    fx.settle();

    let report = fx.report(&[]).report_json();
    let expected: BTreeSet<((String, String), String)> = [
        (unordered("train/cat/a.png", "test/cat/a_moved.jpg"), "near"),
        (
            unordered("train/cat/a.png", "train/dog/a_mirror.png"),
            "flipped",
        ),
        (
            unordered("test/cat/a_moved.jpg", "train/dog/a_mirror.png"),
            "flipped",
        ),
        (
            unordered("train/cat/b.png", "train/cat/b_bright.png"),
            "near",
        ),
        (unordered("train/dog/c.png", "train/dog/c_big.png"), "near"),
    ]
    .into_iter()
    .map(|(pair, kind)| (pair, kind.to_string()))
    .collect();
    let found = near_pairs(&report);
    assert_eq!(found, expected);

    // Leakage: the moved test copy against `a` (straight) and against its mirror image.
    let cross: BTreeSet<(String, String, String)> = report["duplicates"]["cross_split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let field = |k: &str| p[k].as_str().unwrap().to_string();
            (field("a"), field("b"), field("kind"))
        })
        .collect();
    let expected_cross: BTreeSet<(String, String, String)> = [
        ("test/cat/a_moved.jpg", "train/cat/a.png", "near"),
        ("test/cat/a_moved.jpg", "train/dog/a_mirror.png", "flipped"),
    ]
    .into_iter()
    .map(|(a, b, k)| (a.to_string(), b.to_string(), k.to_string()))
    .collect();
    assert_eq!(cross, expected_cross);

    // `a`, its moved copy and its mirror form one group, and the mirror says "dog".
    let conflicts: Vec<Vec<String>> = report["duplicates"]["conflicting_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(sorted_group)
        .collect();
    assert_eq!(
        conflicts,
        vec![strings(&[
            "test/cat/a_moved.jpg",
            "train/cat/a.png",
            "train/dog/a_mirror.png"
        ])]
    );

    // Without mirror search the flipped pair goes, and only dedup and what reads it rerun.
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[dedup]\nmirrored = false\n",
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.reran(), strings(&["dedup", "render"]));
    let without = near_pairs(&run.report_json());
    assert!(
        without
            .iter()
            .all(|(pair, kind)| kind == "near" && !pair.1.contains("mirror")),
        "{without:?}"
    );
    assert_eq!(without.len(), 3);
}

/// The centre `keep` x `keep` of a picture blown up to its size again (a crop), each channel
/// then scaled on its own (a white-balance and saturation edit).
fn cropped_and_recoloured(image: &RgbImage, keep: u32) -> RgbImage {
    let at = (image.width() - keep) / 2;
    let crop = imageops::crop_imm(image, at, at, keep, keep).to_image();
    let mut out = imageops::resize(
        &crop,
        image.width(),
        image.height(),
        imageops::FilterType::Triangle,
    );
    out.pixels_mut().for_each(|p| {
        let [r, g, b] = p.0.map(f32::from);
        p.0 = [
            (r * 1.2).min(255.0) as u8,
            (g * 0.9 + 12.0).min(255.0) as u8,
            (b * 0.75) as u8,
        ];
    });
    out
}

/// A small dark object at (`x`, `y`) on one smooth sky-to-sea gradient: many pictures of one
/// kind of scene (ships at sea) share everything but the object.
fn object_on_gradient(x: u32, y: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    RgbImage::from_fn(40, 40, |px, py| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 7) as f32 - 3.0;
        let inside = px.abs_diff(x) < 6 && py.abs_diff(y) < 3;
        let sky = 200.0 - py as f32 * 3.0 + noise;
        if inside {
            Rgb([40, 40, 50])
        } else {
            Rgb([(sky * 0.7) as u8, (sky * 0.85) as u8, sky.min(255.0) as u8])
        }
    })
}

#[test]
fn a_recoloured_cropped_copy_is_a_copy_and_a_similar_scene_is_not() {
    let fx = Fixture::new();
    let data = fx.data();
    let original = scene(41);
    save(&data, "train/cat/a.png", &original);
    // A crop of 34 of 40 pixels (a zoom of 1.18), recoloured, as a JPEG in the test split.
    save(
        &data,
        "test/cat/a_edited.jpg",
        &cropped_and_recoloured(&original, 34),
    );
    // Two ships at sea: one sky, one sea, the ship elsewhere.
    save(&data, "train/ship/s1.png", &object_on_gradient(12, 18, 1));
    save(&data, "test/ship/s2.png", &object_on_gradient(26, 24, 2));
    for seed in 50..70u32 {
        let split = if seed % 4 == 0 { "test" } else { "train" };
        save(&data, &format!("{split}/dog/other{seed}.png"), &scene(seed));
    }
    fx.settle();

    let report = fx.report(&[]).report_json();
    let expected: BTreeSet<((String, String), String)> = [(
        unordered("train/cat/a.png", "test/cat/a_edited.jpg"),
        "near".to_string(),
    )]
    .into_iter()
    .collect();
    assert_eq!(near_pairs(&report), expected);
    let duplicates = &report["duplicates"];
    assert_eq!(duplicates["near_pairs"][0]["tier"], "copy");
    let leaks = string_pairs(&duplicates["cross_split"], "a", "b");
    assert_eq!(
        leaks,
        [(
            "test/cat/a_edited.jpg".to_string(),
            "train/cat/a.png".to_string()
        )]
        .into_iter()
        .collect()
    );
}

#[test]
fn a_pair_beyond_the_copy_threshold_is_a_possible_copy_and_no_leakage() {
    let fx = Fixture::new();
    let data = fx.data();
    let original = scene(5);
    save(&data, "train/cat/a.png", &original);
    save(
        &data,
        "test/cat/a_edited.jpg",
        &cropped_and_recoloured(&original, 36),
    );
    for seed in 70..80u32 {
        save(&data, &format!("train/dog/other{seed}.png"), &scene(seed));
    }
    fx.settle();
    // A copy threshold below the pair's distance makes it borderline.
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[dedup]\nnear_threshold = 0.0001\npossible_threshold = 0.16\n",
    )
    .unwrap();

    let run = fx.report(&[]);
    let duplicates = &run.report_json()["duplicates"];
    assert_eq!(duplicates["near_pairs"].as_array().unwrap().len(), 0);
    assert_eq!(duplicates["cross_split"].as_array().unwrap().len(), 0);
    assert_eq!(duplicates["groups"].as_array().unwrap().len(), 0);
    let possible = duplicates["possible_pairs"].as_array().unwrap();
    assert_eq!(possible.len(), 1, "{possible:?}");
    assert_eq!(
        unordered(
            possible[0]["a"].as_str().unwrap(),
            possible[0]["b"].as_str().unwrap()
        ),
        unordered("train/cat/a.png", "test/cat/a_edited.jpg")
    );
    assert_eq!(possible[0]["tier"], "possible");
    assert!(
        ["colour", "detail", "grey"].contains(&possible[0]["why"].as_str().unwrap()),
        "{possible:?}"
    );
    // The page lists it for review and raises no leakage alert for it.
    let html = run.html();
    assert!(html.contains("Possible copies: very similar, review (1 pair)"));
    assert!(!html.contains("train/test leakage"));
}

/// The dedup entry of a run's run.json.
fn dedup_log(run: &crate::common::Run) -> Value {
    run.run_log()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "dedup")
        .map(|s| s["dedup"].clone())
        .unwrap_or_default()
}

/// Every duplicate finding of a report.
fn duplicates(run: &crate::common::Run) -> Value {
    run.report_json()["duplicates"].clone()
}

/// An incremental search must give what a full one gives on the same pictures (below 8,192
/// pictures, where the full search is exact): run, edit, rerun, and compare with a cold run.
#[test]
fn added_changed_and_removed_pictures_are_searched_alone_and_match_a_cold_run() {
    let fx = Fixture::new();
    let data = fx.data();
    for seed in 40..100u32 {
        let split = if seed % 5 == 0 { "test" } else { "train" };
        let class = if seed % 2 == 0 { "cat" } else { "dog" };
        save(&data, &format!("{split}/{class}/s{seed}.png"), &scene(seed));
    }
    // Two planted copies from the start; the first pair loses its original later.
    let shift = |image: &RgbImage| {
        RgbImage::from_fn(40, 40, |x, y| {
            *image.get_pixel(x.saturating_sub(2), y.saturating_sub(1))
        })
    };
    save(&data, "train/cat/copy41.png", &shift(&scene(41)));
    save(&data, "test/dog/copy43.png", &shift(&scene(43)));
    fx.settle();
    let first = fx.report(&[]);
    assert_eq!(dedup_log(&first)["search"], "full");
    let before = near_pairs(&first.report_json());
    assert!(
        before.contains(&(
            unordered("train/dog/s41.png", "train/cat/copy41.png"),
            "near".into()
        )),
        "{before:?}"
    );

    // Removed: an original with a copy, and an ordinary picture. Changed: one picture.
    // Added: a shifted copy, a mirror image and a cropped, recoloured copy of old pictures
    // (the crop is found only by the old picture's crop query: the reverse direction), and
    // one unrelated picture.
    std::fs::remove_file(data.join("train/dog/s41.png")).unwrap();
    std::fs::remove_file(data.join("train/cat/s42.png")).unwrap();
    save(&data, "train/cat/s44.png", &scene(500));
    save(&data, "train/dog/late_copy.png", &shift(&scene(47)));
    save(
        &data,
        "test/cat/late_mirror.png",
        &imageops::flip_horizontal(&scene(49)),
    );
    save(
        &data,
        "train/cat/late_crop.png",
        &cropped_and_recoloured(&scene(51), 34),
    );
    save(&data, "train/dog/late_new.png", &scene(501));
    fx.settle();
    let run = fx.report(&[]);
    let log = dedup_log(&run);
    assert_eq!(log["search"], "incremental", "{log}");
    // The changed picture and the four added ones, nothing else.
    assert_eq!(log["pictures_searched"], 5, "{log}");
    assert!(log["pairs_checked"].as_u64().unwrap() > 0, "{log}");
    assert_eq!(log["pictures_kept"], 62 - 3, "{log}");
    // Every old picture had the removed ones among some of its candidates.
    assert!(log["lists_refilled"].as_u64().unwrap() > 0, "{log}");
    assert!(
        run.stderr().contains("5 new pictures searched"),
        "{}",
        run.stderr()
    );
    let after = near_pairs(&run.report_json());
    for planted in [
        (
            unordered("train/dog/s47.png", "train/dog/late_copy.png"),
            "near",
        ),
        (
            unordered("train/dog/s49.png", "test/cat/late_mirror.png"),
            "flipped",
        ),
        (
            unordered("train/dog/s51.png", "train/cat/late_crop.png"),
            "near",
        ),
        (
            unordered("train/dog/s43.png", "test/dog/copy43.png"),
            "near",
        ),
    ] {
        let planted = (planted.0, planted.1.to_string());
        assert!(after.contains(&planted), "{planted:?} missing: {after:?}");
    }
    assert!(
        after.iter().all(|(pair, _)| pair.0 != "train/dog/s41.png"
            && pair.1 != "train/dog/s41.png"
            && pair.0 != "train/cat/copy41.png"
            && pair.1 != "train/cat/copy41.png"),
        "the removed original's pair is gone: {after:?}"
    );

    let cold = fx.report_into(&fx.dir.path().join("cold"), &[]);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    assert_eq!(dedup_log(&cold)["search"], "full");
    assert_eq!(duplicates(&run), duplicates(&cold));

    // Nothing changed since: the pairs are reused, nothing searched.
    let again = fx.report(&[]);
    assert_eq!(again.reran(), Vec::<String>::new());
    std::fs::rename(
        data.join("train/dog/late_new.png"),
        data.join("train/cat/late_new.png"),
    )
    .unwrap();
    let relabel = fx.report(&[]);
    assert_eq!(dedup_log(&relabel)["search"], "reused");
    assert_eq!(dedup_log(&relabel)["pictures_searched"], 0);
}

/// The same on the demo dataset, with its planted copies of every kind: a few files go, one
/// changes, and copies of old pictures arrive.
#[test]
fn an_incremental_search_on_the_demo_equals_a_cold_one() {
    let fx = Fixture::new();
    let (_, truth) = fx.demo();
    let demo = fx.dir.path().join("demo-out/demo-dataset");
    let data = fx.data();
    for entry in walkdir::WalkDir::new(&demo) {
        let entry = entry.unwrap();
        let to = data.join(entry.path().strip_prefix(&demo).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    fx.settle();
    let first = fx.report(&[]);
    assert_eq!(dedup_log(&first)["search"], "full");

    // The original of the first planted near pair goes, and so does another file.
    let pair = &truth["near_pairs"][0];
    let original = pair["original"].as_str().unwrap();
    std::fs::remove_file(data.join(original)).unwrap();
    let copy = pair["copy"].as_str().unwrap();
    let class_dir = data.join(Path::new(copy).parent().unwrap());
    let mut ordinary: Vec<String> = std::fs::read_dir(&class_dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| {
            p.ends_with(".png") && !truth.to_string().contains(p.rsplit('/').next().unwrap())
        })
        .collect();
    ordinary.sort();
    assert!(ordinary.len() >= 3, "{ordinary:?}");
    std::fs::remove_file(&ordinary[0]).unwrap();
    // One changes; a near copy of another arrives late.
    let changed = image::open(&ordinary[1]).unwrap().to_rgb8();
    imageops::flip_vertical(&changed)
        .save(&ordinary[1])
        .unwrap();
    let source = image::open(&ordinary[2]).unwrap().to_rgb8();
    let mut late = source.clone();
    late.pixels_mut()
        .for_each(|p| p.0 = p.0.map(|v| v.saturating_add(20)));
    late.save(class_dir.join("late_copy.png")).unwrap();
    fx.settle();

    let run = fx.report(&[]);
    let log = dedup_log(&run);
    assert_eq!(log["search"], "incremental", "{log}");
    assert_eq!(log["pictures_searched"], 2, "{log}");
    let late_pair = unordered(
        &format!(
            "{}/late_copy.png",
            Path::new(copy).parent().unwrap().display()
        ),
        Path::new(&ordinary[2])
            .strip_prefix(&data)
            .unwrap()
            .to_str()
            .unwrap(),
    );
    let found = near_pairs(&run.report_json());
    assert!(
        found.iter().any(|(p, _)| *p == late_pair),
        "{late_pair:?} missing: {found:?}"
    );
    let cold = fx.report_into(&fx.dir.path().join("cold"), &[]);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    assert_eq!(duplicates(&run), duplicates(&cold));
}
