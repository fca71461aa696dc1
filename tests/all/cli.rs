//! The command line: help text, exit codes, quiet mode, settings file errors.

use crate::common::{Fixture, run_in};

#[test]
fn help_explains_every_flag() {
    let fx = Fixture::new();
    let run = run_in(
        fx.dir.path(),
        &["report".into(), "--help".into()],
        &fx.out(),
    );
    assert!(run.output.status.success());
    let help = String::from_utf8_lossy(&run.output.stdout);
    for flag in [
        "--out", "--jobs", "--quiet", "--force", "--config", "DATASET",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn missing_dataset_fails_with_exit_code_1_naming_the_folder() {
    let fx = Fixture::new();
    let run = fx.report_raw(&[]);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr()
            .contains("error: cannot open the dataset folder")
            && run.stderr().contains("data"),
        "{}",
        run.stderr()
    );
}

#[test]
fn bad_flag_is_a_usage_error() {
    let fx = Fixture::new();
    let run = fx.report_raw(&["--jobs", "zero"]);
    assert_eq!(run.output.status.code(), Some(2));
}

#[test]
fn quiet_prints_nothing_and_verbose_prints_each_stage() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    let run = fx.report(&["--quiet", "--jobs", "1"]);
    assert_eq!(run.stderr(), "");
    assert!(run.output.stdout.is_empty());
    let run = fx.report(&[]);
    for stage in crate::common::ALL_STAGES {
        assert!(run.stderr().contains(stage), "{}", run.stderr());
    }
}

#[test]
fn unknown_setting_is_an_error_naming_the_key() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[dedup]\nthreshhold = 3\n",
    )
    .unwrap();
    let run = fx.report_raw(&[]);
    // A wrong setting is exit code 2 like a wrong flag (PRODUCT.md); it was 1 until the
    // settings were validated in one place.
    assert_eq!(run.output.status.code(), Some(2));
    assert!(run.stderr().contains("threshhold"), "{}", run.stderr());
    assert!(run.stderr().contains("aldente.toml"), "{}", run.stderr());
}

#[test]
fn out_of_range_setting_is_refused_with_key_value_and_range() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[embed]\nneighbours = 0\n",
    )
    .unwrap();
    let run = fx.report_raw(&[]);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("embed.neighbours = 0 is out of range (allowed: 1 to 100)")
            && stderr.contains("aldente.toml"),
        "{stderr}"
    );
    assert!(!fx.out().join("report.html").exists(), "nothing ran");
}
