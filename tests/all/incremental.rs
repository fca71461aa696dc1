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
