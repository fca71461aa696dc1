//! Interrupted runs and damaged caches (issue 6): a run killed at any moment, or a cache file
//! damaged on disk, must leave an output folder that the next run either reuses correctly or
//! recomputes. The verdict never depends on when the kill landed: every kill point must give
//! a rerun whose report.json equals a clean run's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Fixture, read_json, run_in};

/// A dataset big enough that ingest takes a moment: 160 images of 160x120 in four classes,
/// plus a broken file and a non-image.
fn sizeable_dataset(fx: &Fixture) {
    for i in 0..160u32 {
        let path = fx.data().join(format!("class{}/img{i:03}.png", i % 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        crate::common::synthetic(i, 160, 120).save(&path).unwrap();
    }
    fx.bytes("class0/broken.jpg", b"\xFF\xD8\xFF\xE0 cut off");
    fx.bytes("class1/notes.txt", b"notes");
    fx.settle();
}

fn args(data: &Path, out: &Path) -> Vec<String> {
    vec![
        "report".into(),
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ]
}

/// Starts a run and SIGKILLs it `after` it started (or once it has created the cache folder,
/// whichever comes first when `at_cache` is set). The run may also have finished by then.
fn kill_run(fx: &Fixture, out: &Path, after: Duration, at_cache: bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aldente"))
        .current_dir(fx.dir.path())
        .args(args(&fx.data(), out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aldente");
    let started = Instant::now();
    while started.elapsed() < after {
        if at_cache && out.join("cache").exists() {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL: no handler runs, nothing is flushed
    child.wait().unwrap();
}

fn clean_report(fx: &Fixture) -> Value {
    let out = fx.dir.path().join("clean");
    let run = run_in(fx.dir.path(), &args(&fx.data(), &out), &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    run.report_json()
}

// Issue 6: killing a run at any moment (here: right after it creates the cache, and after a
// spread of delays covering ingest, the later stages and render) must never leave a cache the
// next run trusts wrongly or chokes on.
#[test]
fn interrupt_killed_runs_leave_a_cache_the_next_run_handles() {
    let fx = Fixture::new();
    sizeable_dataset(&fx);
    let expected = clean_report(&fx);

    let out = fx.out();
    kill_run(&fx, &out, Duration::from_secs(10), true);
    for millis in [0, 5, 20, 60, 150, 300, 600, 1000, 1600, 2500] {
        kill_run(&fx, &out, Duration::from_millis(millis), false);
    }
    let run = run_in(fx.dir.path(), &args(&fx.data(), &out), &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.report_json(), expected, "rerun after kills differs");

    // The cache the rerun left is whole: the next run reuses every stage.
    let again = run_in(fx.dir.path(), &args(&fx.data(), &out), &out);
    assert!(again.output.status.success(), "{}", again.stderr());
    assert_eq!(again.reran(), Vec::<String>::new());
    assert_eq!(again.report_json(), expected);
}

// A cache file can be damaged without changing its size (a flipped bit, a torn write over old
// bytes): the size check in the sidecar then passes, and only the checksum catches it.
#[test]
fn interrupt_damaged_cache_files_are_recomputed_not_trusted() {
    let fx = Fixture::new();
    sizeable_dataset(&fx);
    let expected = clean_report(&fx);
    let out = fx.out();
    let first = run_in(fx.dir.path(), &args(&fx.data(), &out), &out);
    assert!(first.output.status.success(), "{}", first.stderr());

    let mut damaged = 0;
    for entry in walkdir::WalkDir::new(out.join("cache")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() || entry.path().extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let mut bytes = std::fs::read(entry.path()).unwrap();
        if bytes.is_empty() {
            continue;
        }
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5A;
        std::fs::write(entry.path(), &bytes).unwrap();
        damaged += 1;
    }
    assert!(
        damaged >= 3,
        "expected several cache files, damaged {damaged}"
    );
    // report.html is an output too: remove it so render must run again.
    std::fs::remove_file(out.join("report.json")).unwrap();

    let run = run_in(fx.dir.path(), &args(&fx.data(), &out), &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.report_json(), expected);
    let warnings = read_json(&out.join("run.json"))["warnings"].to_string();
    assert!(warnings.contains("damaged"), "no warning: {warnings}");
}
