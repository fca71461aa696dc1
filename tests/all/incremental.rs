//! Reruns: fresh when nothing changed; exactly the touched work redone otherwise.

use crate::common::{ALL_STAGES, Fixture, strings};

#[test]
fn rerun_with_nothing_changed_is_fresh_everywhere_and_decodes_nothing() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]);
    assert_eq!(first.reran(), strings(ALL_STAGES));
    assert_eq!(first.decoded(), 15);
    let second = fx.report(&[]);
    assert_eq!(second.reran(), Vec::<String>::new(), "{}", second.stderr());
    assert_eq!(second.decoded(), 0);
    assert!(second.stderr().contains("fresh"));
}

#[test]
fn relabel_decodes_nothing_and_moves_the_image() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    std::fs::rename(
        fx.data().join("train/cat/0.png"),
        fx.data().join("train/dog/moved.png"),
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.decoded(), 0, "a relabel must not decode");
    assert_eq!(run.reran(), strings(ALL_STAGES));
    let why = &run.run_log()["stages"][0]["reason"];
    let why = why.as_str().unwrap();
    assert!(why.contains("`train/cat` lost 1 file"), "{why}");
    assert!(why.contains("`train/dog` gained 1 file"), "{why}");
    let report = run.report_json();
    assert_eq!(report["dataset"]["class_split_counts"]["cat"]["train"], 3);
    assert_eq!(report["dataset"]["class_split_counts"]["dog"]["train"], 5);
}

#[test]
fn changed_pixels_decode_only_that_file() {
    let fx = Fixture::new();
    fx.small_dataset();
    let before = fx.report(&[]).report_json();
    fx.png("train/cow/2.png", 999);
    let run = fx.report(&[]);
    assert_eq!(run.decoded(), 1);
    assert_eq!(run.ingest_count("files_read"), 1);
    let after = run.report_json();
    assert_ne!(before["statistics"]["mean"], after["statistics"]["mean"]);
}

#[test]
fn thumbnails_after_a_relabel_and_a_change_match_a_cold_run() {
    // A rerun takes unchanged thumbnails from the previous run's buffer and new ones from
    // the decoder; thumbs.bin must come out as a cold run writes it.
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    std::fs::rename(
        fx.data().join("train/cat/0.png"),
        fx.data().join("train/dog/moved.png"),
    )
    .unwrap();
    fx.png("train/cow/2.png", 999);
    fx.png("train/cat/new.png", 1234);
    let rerun = fx.report(&[]);
    assert_eq!(rerun.decoded(), 2);
    let cold_out = fx.dir.path().join("cold-out");
    let cold = fx.report_into(&cold_out, &[]);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    assert_eq!(cold.decoded(), 16);
    let thumbs =
        |out: &std::path::Path| std::fs::read(out.join("cache/ingest/thumbs.bin")).unwrap();
    let (incremental, fresh) = (thumbs(&fx.out()), thumbs(&cold_out));
    assert!(!fresh.is_empty());
    assert!(incremental == fresh, "thumbs.bin differs from a cold run's");
    let mean = |run: &crate::common::Run| run.report_json()["statistics"]["mean"].clone();
    assert_eq!(mean(&rerun), mean(&cold));
}

#[test]
fn a_relabel_keeps_thumbs_bin_as_it_is_and_a_later_change_still_matches_a_cold_run() {
    // A rerun that decodes nothing leaves thumbs.bin in place (its records point into it
    // where the thumbnails were) instead of writing it again in the new image order; the
    // run after it must still read the right thumbnails from it.
    use std::os::unix::fs::MetadataExt;
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    let thumbs_path = fx.out().join("cache/ingest/thumbs.bin");
    let before = std::fs::read(&thumbs_path).unwrap();
    let inode = std::fs::metadata(&thumbs_path).unwrap().ino();
    std::fs::rename(
        fx.data().join("train/cat/0.png"),
        fx.data().join("train/dog/moved.png"),
    )
    .unwrap();
    let relabel = fx.report(&[]);
    assert_eq!(relabel.decoded(), 0);
    assert_eq!(std::fs::metadata(&thumbs_path).unwrap().ino(), inode);
    assert!(std::fs::read(&thumbs_path).unwrap() == before);
    let fresh = fx.report(&[]);
    assert_eq!(fresh.reran(), Vec::<String>::new(), "{}", fresh.stderr());

    fx.png("train/cow/2.png", 999);
    let rerun = fx.report(&[]);
    assert_eq!(rerun.decoded(), 1);
    let cold_out = fx.dir.path().join("cold-out");
    let cold = fx.report_into(&cold_out, &[]);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    let cold_thumbs = std::fs::read(cold_out.join("cache/ingest/thumbs.bin")).unwrap();
    assert!(std::fs::read(&thumbs_path).unwrap() == cold_thumbs);
    let stats = |run: &crate::common::Run| run.report_json()["statistics"].clone();
    assert_eq!(stats(&rerun), stats(&cold));
}

#[test]
fn touching_a_file_without_changing_it_keeps_every_stage_fresh() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    let path = fx.data().join("train/cat/1.png");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let run = fx.report(&[]);
    assert_eq!(
        run.ingest_count("files_read"),
        1,
        "the touched file is read again"
    );
    assert_eq!(run.reran(), Vec::<String>::new());
}

#[test]
fn a_setting_change_reruns_exactly_the_stages_that_read_it() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[sample]\nper_class = 2\n",
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.reran(), strings(&["sample", "render"]));
    let why = run.run_log()["stages"][1]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(why, "sample.per_class changed 48 → 2");
    assert_eq!(run.decoded(), 0);
}

#[test]
fn force_reruns_the_named_stage_and_everything_after_it() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    let run = fx.report(&["--force=dedup"]);
    assert_eq!(run.reran(), strings(&["dedup", "embed", "render"]));
    let run = fx.report(&["--force"]);
    assert_eq!(run.reran(), strings(ALL_STAGES));
    assert_eq!(run.decoded(), 15, "--force alone decodes everything again");
}

#[test]
fn truncated_cache_file_leads_to_a_recompute_not_a_crash() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]).report_json();
    let table = fx.out().join("cache/ingest/table.bin");
    let bytes = std::fs::read(&table).unwrap();
    std::fs::write(&table, &bytes[..bytes.len() / 2]).unwrap();
    let run = fx.report(&[]);
    assert!(run.reran().contains(&"ingest".to_string()));
    let reason = run.run_log()["stages"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("damaged"), "{reason}");
    assert_eq!(run.report_json()["dataset"], first["dataset"]);
    assert_eq!(run.report_json()["statistics"], first["statistics"]);
}

#[test]
fn damaged_downstream_artifact_is_recomputed() {
    let fx = Fixture::new();
    fx.small_dataset();
    let first = fx.report(&[]).report_json();
    // Same length, garbage content: the size check passes, decoding the artifact fails.
    let artifact = fx.out().join("cache/statistics/artifact.bin");
    let len = std::fs::metadata(&artifact).unwrap().len() as usize;
    std::fs::write(&artifact, vec![0xFFu8; len]).unwrap();
    std::fs::remove_file(fx.out().join("report.html")).unwrap();
    let run = fx.report(&[]);
    let log = run.run_log();
    assert!(
        log["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("statistics")),
        "{log}"
    );
    assert_eq!(run.report_json()["statistics"], first["statistics"]);
}

#[test]
fn moving_the_dataset_folder_keeps_the_cache_valid() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    let moved = fx.dir.path().join("elsewhere");
    std::fs::rename(fx.data(), &moved).unwrap();
    let args = vec![
        "report".to_string(),
        moved.display().to_string(),
        "--out".to_string(),
        fx.out().display().to_string(),
    ];
    let run = crate::common::run_in(fx.dir.path(), &args, &fx.out());
    assert!(run.output.status.success());
    assert_eq!(run.decoded(), 0);
    // Only the dataset's name (shown in the report) changed.
    assert_eq!(run.reran(), strings(&["render"]));
}

/// A run's stage entry in run.json.
fn stage_log(run: &crate::common::Run, name: &str) -> serde_json::Value {
    run.run_log()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// report.json without what may differ between two equal runs (timings).
fn findings(report: &serde_json::Value) -> serde_json::Value {
    let mut report = report.clone();
    if let Some(map) = report.as_object_mut() {
        map.retain(|key, _| !key.contains("seconds"));
    }
    report
}

#[test]
fn relabel_redoes_no_pixel_work_and_equals_a_cold_run() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    std::fs::rename(
        fx.data().join("train/cat/1.png"),
        fx.data().join("train/dog/moved.png"),
    )
    .unwrap();
    let run = fx.report(&[]);
    assert_eq!(run.decoded(), 0);
    let dedup = &stage_log(&run, "dedup")["dedup"];
    assert_eq!(dedup["pairs_reused"], true, "{dedup}");
    assert_eq!(dedup["pictures_searched"], 0, "{dedup}");
    let embed = &stage_log(&run, "embed")["embed"];
    assert_eq!(embed["pixel_part_reused"], true, "{embed}");
    assert_eq!(embed["neighbours_searched"], 0, "{embed}");
    assert_eq!(embed["features_computed"], 0, "{embed}");
    assert_eq!(embed["map_iterations"], 0, "{embed}");
    assert!(run.stderr().contains("pairs reused"), "{}", run.stderr());

    let cold = fx.report_into(&fx.dir.path().join("cold"), &[]);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    let cold_embed = &stage_log(&cold, "embed")["embed"];
    assert_eq!(cold_embed["pixel_part_reused"], false, "{cold_embed}");
    assert_eq!(cold_embed["neighbours_searched"], 15, "{cold_embed}");
    assert_eq!(findings(&run.report_json()), findings(&cold.report_json()));
}

#[test]
fn changed_pixels_redo_the_pixel_part_and_force_redoes_it_from_scratch() {
    let fx = Fixture::new();
    fx.small_dataset();
    fx.report(&[]);
    fx.png("train/cow/2.png", 999);
    let run = fx.report(&[]);
    let embed = &stage_log(&run, "embed")["embed"];
    assert_eq!(embed["pixel_part_reused"], false, "{embed}");
    assert_eq!(embed["features_computed"], 1, "{embed}");
    let dedup = &stage_log(&run, "dedup")["dedup"];
    assert_eq!(dedup["pairs_reused"], false, "{dedup}");
    // Only the changed picture is searched; `--force` searches all of them.
    assert_eq!(dedup["search"], "incremental", "{dedup}");
    assert_eq!(dedup["pictures_searched"], 1, "{dedup}");
    let forced = fx.report(&["--force=dedup"]);
    let forced_dedup = &stage_log(&forced, "dedup")["dedup"];
    assert_eq!(forced_dedup["pairs_reused"], false);
    assert_eq!(forced_dedup["search"], "full", "{forced_dedup}");
    assert_eq!(forced_dedup["pictures_searched"], 15, "{forced_dedup}");
    assert_eq!(
        stage_log(&forced, "embed")["embed"]["pixel_part_reused"],
        false
    );
}

#[test]
fn relabelling_a_planted_mislabel_clears_its_findings_without_pixel_work() {
    let fx = Fixture::new();
    let (first, truth) = fx.demo();
    let out = fx.dir.path().join("demo-out");
    let data = out.join("demo-dataset");
    let mislabel = &truth["mislabelled"][0];
    let path = mislabel["path"].as_str().unwrap();
    let split = path.split('/').next().unwrap();
    let fixed = format!(
        "{split}/{}/relabelled.png",
        mislabel["true_label"].as_str().unwrap()
    );
    let listed = |report: &serde_json::Value, p: &str| {
        report["label_issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == p)
    };
    assert!(
        listed(&first.report_json(), path),
        "the planted mislabel is listed"
    );
    std::fs::rename(data.join(path), data.join(&fixed)).unwrap();
    // One image of the planted conflicting-label pair joins the other's class.
    let pair = truth["conflicting_labels"][0].as_array().unwrap();
    let keep = pair[0].as_str().unwrap();
    let moved = pair[1].as_str().unwrap();
    let keep_class = keep.split('/').nth(1).unwrap();
    let target = format!(
        "{}/{keep_class}/joined.png",
        moved.split('/').next().unwrap()
    );
    std::fs::rename(data.join(moved), data.join(&target)).unwrap();
    assert!(
        !first.report_json()["duplicates"]["conflicting_labels"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let (run, _) = fx.demo();
    assert_eq!(run.decoded(), 0, "a relabel decodes nothing");
    assert_eq!(stage_log(&run, "dedup")["dedup"]["pairs_reused"], true);
    assert_eq!(stage_log(&run, "embed")["embed"]["pixel_part_reused"], true);
    let report = run.report_json();
    assert!(!listed(&report, &fixed), "{fixed} is still a label issue");
    assert!(!listed(&report, path));
    assert_eq!(
        report["duplicates"]["conflicting_labels"],
        serde_json::json!([]),
        "the conflicting group is resolved"
    );
}

/// report.json without what a warm-started map may change: timings, the map's coordinates
/// and its per-class agreement.
fn findings_off_the_map(report: &serde_json::Value) -> serde_json::Value {
    let mut report = findings(report);
    if let Some(embedding) = report["embedding"].as_object_mut() {
        embedding.remove("map");
        if let Some(classes) = embedding
            .get_mut("separation")
            .and_then(|s| s.as_object_mut())
        {
            for class in classes.values_mut() {
                if let Some(class) = class.as_object_mut() {
                    class.remove("map_agreement");
                }
            }
        }
    }
    report
}

#[test]
fn a_few_changed_added_and_removed_pictures_repair_the_neighbours_and_equal_a_cold_run() {
    let fx = Fixture::new();
    let (first, _) = fx.demo();
    let out = fx.dir.path().join("demo-out");
    let data = out.join("demo-dataset");
    let images = first.report_json()["dataset"]["images"].as_u64().unwrap();
    let first_embed = &stage_log(&first, "embed")["embed"];
    assert_eq!(first_embed["neighbours_searched"], images, "{first_embed}");

    // Three pictures repainted, two added, two removed, all in one class folder.
    let mut pngs: Vec<_> = std::fs::read_dir(data.join("train/checkers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    for (i, path) in pngs.iter().take(3).enumerate() {
        crate::common::synthetic(500 + i as u32, 32, 32)
            .save(path)
            .unwrap();
    }
    for i in 0..2 {
        crate::common::synthetic(600 + i, 32, 32)
            .save(data.join(format!("train/checkers/added-{i}.png")))
            .unwrap();
    }
    for path in &pngs[3..5] {
        std::fs::remove_file(path).unwrap();
    }
    let (run, _) = fx.demo();
    let embed = &stage_log(&run, "embed")["embed"];
    assert_eq!(embed["pixel_part_reused"], false, "{embed}");
    assert_eq!(embed["features_computed"], 5, "{embed}");
    let repaired = embed["neighbours_repaired"].as_u64().unwrap();
    let searched = embed["neighbours_searched"].as_u64().unwrap();
    assert_eq!(repaired + searched, images, "{embed}");
    // How many rows the bounds certify depends on how far apart the pictures are (on
    // CIFAR-10, 59,585 of 60,000 after 100 changes; the demo's shapes sit closer).
    assert!(repaired > 0 && searched < images, "{embed}");
    assert_eq!(embed["map_warm"], true, "{embed}");
    assert!(embed["map_iterations"].as_u64().unwrap() < 100, "{embed}");

    // A cold run on the changed data: the same findings (exact neighbours, bit for bit).
    let cold_out = fx.dir.path().join("cold");
    let args = crate::common::strings(&[
        "report",
        data.to_str().unwrap(),
        "--out",
        cold_out.to_str().unwrap(),
    ]);
    let cold = crate::common::run_in(fx.dir.path(), &args, &cold_out);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    let cold_embed = &stage_log(&cold, "embed")["embed"];
    assert_eq!(cold_embed["map_warm"], false, "{cold_embed}");
    assert_eq!(
        findings_off_the_map(&run.report_json()),
        findings_off_the_map(&cold.report_json())
    );

    // A second round of changes repairs from the same reference and still equals cold.
    crate::common::synthetic(700, 32, 32)
        .save(data.join("train/checkers/added-late.png"))
        .unwrap();
    let (again, _) = fx.demo();
    let again_embed = &stage_log(&again, "embed")["embed"];
    assert!(
        again_embed["neighbours_repaired"].as_u64().unwrap() > 0,
        "{again_embed}"
    );
    let cold = crate::common::run_in(fx.dir.path(), &args, &cold_out);
    assert!(cold.output.status.success(), "{}", cold.stderr());
    assert_eq!(
        findings_off_the_map(&again.report_json()),
        findings_off_the_map(&cold.report_json())
    );
    // --force=embed searches everything again and maps from scratch.
    let mut forced_args = crate::common::strings(&["report", data.to_str().unwrap(), "--out"]);
    forced_args.push(out.display().to_string());
    forced_args.push("--force=embed".into());
    let forced = crate::common::run_in(fx.dir.path(), &forced_args, &out);
    assert!(forced.output.status.success(), "{}", forced.stderr());
    let forced_embed = &stage_log(&forced, "embed")["embed"];
    assert_eq!(
        forced_embed["neighbours_searched"],
        images + 1,
        "{forced_embed}"
    );
    assert_eq!(forced_embed["map_warm"], false, "{forced_embed}");
}
