//! Fixtures written from code into temp dirs, and a runner for the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};
use serde_json::Value;

/// A dataset folder and an output folder inside one temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Writes a seeded synthetic PNG at `rel` (inside the dataset folder).
    pub fn png(&self, rel: &str, seed: u32) -> PathBuf {
        let path = self.data().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        synthetic(seed, 16, 12).save(&path).unwrap();
        path
    }

    /// Writes raw bytes at `rel`.
    pub fn bytes(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.data().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Sets every file's mtime ten seconds back, as if the dataset had been there a while.
    /// Without it, files written in the same instant as a scan are "racy" and read again.
    pub fn settle(&self) {
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        for entry in walkdir::WalkDir::new(self.data()) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let file = std::fs::File::options()
                    .write(true)
                    .open(entry.path())
                    .unwrap();
                file.set_modified(past).unwrap();
            }
        }
    }

    /// The small split dataset many tests start from: classes cat, dog and cow, four train
    /// images and one test image each, settled.
    pub fn small_dataset(&self) {
        for (i, class) in ["cat", "dog", "cow"].iter().enumerate() {
            for j in 0..4 {
                self.png(&format!("train/{class}/{j}.png"), (i * 10 + j) as u32);
            }
            self.png(&format!("test/{class}/t.png"), (100 + i) as u32);
        }
        self.settle();
    }

    /// Runs `aldente demo --out <dir>/demo-out`; asserts success. Returns the run and the
    /// demo's truth file.
    pub fn demo(&self) -> (Run, Value) {
        let out = self.dir.path().join("demo-out");
        let args = vec![
            "demo".to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        let run = run_in(self.dir.path(), &args, &out);
        assert!(run.output.status.success(), "{}", run.stderr());
        let truth = read_json(&out.join("demo-truth.json"));
        (run, truth)
    }

    /// Runs `aldente report data --out out` with extra args; asserts success.
    pub fn report(&self, extra: &[&str]) -> Run {
        let run = self.report_raw(extra);
        assert!(
            run.output.status.success(),
            "aldente failed: {}\n{}",
            run.output.status,
            String::from_utf8_lossy(&run.output.stderr)
        );
        run
    }

    pub fn report_raw(&self, extra: &[&str]) -> Run {
        self.report_into(&self.out(), extra)
    }

    /// Runs `aldente report data --out OUT` with extra args; does not check the outcome.
    pub fn report_into(&self, out: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<String> = vec![
            "report".into(),
            self.data().display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run_in(self.dir.path(), &args, out)
    }
}

/// Runs the binary in `cwd` and collects its outputs.
pub fn run_in(cwd: &Path, args: &[String], out: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_aldente"))
        .current_dir(cwd)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run aldente");
    Run {
        output,
        out: out.to_path_buf(),
    }
}

pub struct Run {
    pub output: Output,
    pub out: PathBuf,
}

impl Run {
    pub fn run_log(&self) -> Value {
        read_json(&self.out.join("run.json"))
    }

    pub fn report_json(&self) -> Value {
        read_json(&self.out.join("report.json"))
    }

    pub fn html(&self) -> String {
        std::fs::read_to_string(self.out.join("report.html")).expect("report.html")
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The status ("fresh", "stale", "forced") of every stage, in order.
    pub fn statuses(&self) -> Vec<(String, String)> {
        self.run_log()["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The stages that did not come from the cache.
    pub fn reran(&self) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|(_, status)| status != "fresh")
            .map(|(name, _)| name)
            .collect()
    }

    pub fn decoded(&self) -> u64 {
        self.ingest_count("decoded")
    }

    pub fn ingest_count(&self, key: &str) -> u64 {
        let log = self.run_log();
        log["stages"][0]["ingest"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no ingest.{key} in {log}"))
    }
}

pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A small image whose pixels depend on `seed` everywhere (no two seeds alike).
pub fn synthetic(seed: u32, width: u32, height: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

pub const ALL_STAGES: &[&str] = &["ingest", "sample", "statistics", "dedup", "embed", "render"];

pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
