//! The gate: checks a CI job fails on (`--fail-on leakage,imbalance=3.0`, or `[gate] fail_on`
//! in aldente.toml), evaluated over a report's findings (`aldente report`) or over what a
//! change introduced (`aldente diff`).
//!
//! A check counts findings and fails when there are more than its threshold (default 0):
//! `leakage` (copies across splits), `conflicting-labels` (copies whose labels disagree),
//! `unreadable` (files that could not be decoded), `new-duplicates` (groups of copies),
//! `label-issues` (likely label errors). `imbalance` fails when the largest class has more
//! than its threshold times the images of the smallest (default: `statistics.imbalance_ratio`).
//! A failed gate is not a failed run: the outputs are written, and the process exits with
//! [`EXIT_CODE`]. This module is a leaf: it parses and evaluates, and prints nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The exit code of a run whose gate failed (0 done, 1 the run failed, 2 a wrong flag or
/// setting).
pub const EXIT_CODE: u8 = 3;

/// One kind of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    Leakage,
    ConflictingLabels,
    Unreadable,
    NewDuplicates,
    LabelIssues,
    Imbalance,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::Leakage,
        Check::ConflictingLabels,
        Check::Unreadable,
        Check::NewDuplicates,
        Check::LabelIssues,
        Check::Imbalance,
    ];

    /// The name used in `--fail-on`, aldente.toml and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::Leakage => "leakage",
            Check::ConflictingLabels => "conflicting-labels",
            Check::Unreadable => "unreadable",
            Check::NewDuplicates => "new-duplicates",
            Check::LabelIssues => "label-issues",
            Check::Imbalance => "imbalance",
        }
    }

    fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    /// What one finding of this check is, singular and plural.
    fn noun(self) -> (&'static str, &'static str) {
        match self {
            Check::Leakage => (
                "pair of copies across splits",
                "pairs of copies across splits",
            ),
            Check::ConflictingLabels => (
                "group of copies with conflicting labels",
                "groups of copies with conflicting labels",
            ),
            Check::Unreadable => ("unreadable file", "unreadable files"),
            Check::NewDuplicates => ("group of duplicates", "groups of duplicates"),
            Check::LabelIssues => ("label-issue candidate", "label-issue candidates"),
            Check::Imbalance => ("class imbalance", "class imbalance"),
        }
    }
}

/// A check with its threshold, as given (`None`: the default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateCheck {
    pub check: Check,
    pub threshold: Option<f64>,
}

impl fmt::Display for GateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.threshold {
            Some(t) => write!(f, "{}={t}", self.check.name()),
            None => f.write_str(self.check.name()),
        }
    }
}

impl FromStr for GateCheck {
    type Err = String;

    /// `leakage`, `leakage=2` (at most 2 allowed), `imbalance=3.5`.
    fn from_str(text: &str) -> Result<GateCheck, String> {
        let (name, value) = match text.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (text.trim(), None),
        };
        let known = || {
            Check::ALL
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let check = Check::from_name(name)
            .ok_or_else(|| format!("unknown check `{name}` (known checks: {})", known()))?;
        let threshold = match value {
            None => None,
            Some(value) => Some(parse_threshold(check, value)?),
        };
        Ok(GateCheck { check, threshold })
    }
}

fn parse_threshold(check: Check, value: &str) -> Result<f64, String> {
    let number: f64 = value
        .parse()
        .map_err(|_| format!("{}={value}: the threshold is not a number", check.name()))?;
    if check == Check::Imbalance {
        if number.is_finite() && number >= 1.0 {
            return Ok(number);
        }
        return Err(format!(
            "imbalance={value} is out of range (allowed: a ratio of 1.0 or more)"
        ));
    }
    if number.is_finite() && number >= 0.0 && number.fract() == 0.0 {
        Ok(number)
    } else {
        Err(format!(
            "{}={value} is out of range (allowed: a whole number of findings, 0 or more)",
            check.name()
        ))
    }
}

/// The checks of one gate, in the order given; a check named twice keeps its last threshold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    pub checks: Vec<GateCheck>,
}

impl Gate {
    /// Parses a comma-separated list: `leakage,imbalance=3.0`. Empty items are ignored.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Gate, String> {
        let mut checks: Vec<GateCheck> = Vec::new();
        for item in items.into_iter().flat_map(|s| s.split(',')) {
            if item.trim().is_empty() {
                continue;
            }
            let parsed: GateCheck = item.parse()?;
            checks.retain(|c| c.check != parsed.check);
            checks.push(parsed);
        }
        Ok(Gate { checks })
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// A stable text of the checks, for fingerprints: `leakage,imbalance=3`.
    pub fn describe(&self) -> String {
        self.checks
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Evaluates every check over `findings`. `default_imbalance` is the ratio `imbalance`
    /// uses without a threshold of its own.
    pub fn evaluate(&self, findings: &Findings, default_imbalance: f64) -> GateOutcome {
        let checks: Vec<CheckOutcome> = self
            .checks
            .iter()
            .map(|c| evaluate_one(c, findings, default_imbalance))
            .collect();
        GateOutcome {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }
}

/// The findings the checks count, each one a list of the files it concerns.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// A sentence fragment on what the counts cover: "in the report", "introduced by the change".
    pub scope: &'static str,
    pub leakage: Vec<Vec<String>>,
    pub conflicting_labels: Vec<Vec<String>>,
    pub unreadable: Vec<Vec<String>>,
    pub duplicates: Vec<Vec<String>>,
    pub label_issues: Vec<Vec<String>>,
    pub imbalance: Option<Imbalance>,
}

/// The largest and the smallest class, by images.
#[derive(Debug, Clone, PartialEq)]
pub struct Imbalance {
    pub largest: (String, usize),
    pub smallest: (String, usize),
}

impl Imbalance {
    /// From class -> images; `None` with fewer than two classes.
    pub fn of<'a>(counts: impl IntoIterator<Item = (&'a String, usize)>) -> Option<Imbalance> {
        let counts: Vec<(&String, usize)> = counts.into_iter().collect();
        if counts.len() < 2 {
            return None;
        }
        let largest = counts.iter().max_by_key(|(_, n)| *n)?;
        let smallest = counts.iter().min_by_key(|(_, n)| *n)?;
        Some(Imbalance {
            largest: (largest.0.clone(), largest.1),
            smallest: (smallest.0.clone(), smallest.1),
        })
    }

    /// Largest over smallest (infinite when a class has no images).
    pub fn ratio(&self) -> f64 {
        if self.smallest.1 == 0 {
            f64::INFINITY
        } else {
            self.largest.1 as f64 / self.smallest.1 as f64
        }
    }
}

/// What the gate said: every check, and whether all passed. Part of report.json and
/// diff.json (`gate`), so it is a contract: fields are only added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
}

impl GateOutcome {
    pub fn failed(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// Terminal lines: one per check, and for a failed check the files it failed on (the
    /// first ten).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.checks.is_empty() {
            return lines;
        }
        lines.push(format!(
            "gate: {}",
            if self.passed { "passed" } else { "FAILED" }
        ));
        for check in &self.checks {
            let status = if check.passed { "ok" } else { "FAILED" };
            lines.push(format!(
                "  {:<19} {status:<6} {}",
                check.check, check.message
            ));
            if !check.passed {
                for file in check.files.iter().take(10) {
                    lines.push(format!("      {file}"));
                }
                if check.files.len() > 10 {
                    lines.push(format!("      … and {} more", check.files.len() - 10));
                }
            }
        }
        lines
    }

    /// The gate's section of summary.md / diff.md; empty without checks. Files go in code
    /// spans with backticks removed, so a file name cannot inject Markdown.
    pub fn markdown(&self) -> String {
        if self.checks.is_empty() {
            return String::new();
        }
        let code = |text: &str| format!("`{}`", text.replace('`', "'").replace('\n', " "));
        let mut out = format!(
            "\n### Gate: {}\n\n",
            if self.passed {
                "passed ✅"
            } else {
                "failed ❌"
            }
        );
        for check in &self.checks {
            let mark = if check.passed { "✅" } else { "❌" };
            out.push_str(&format!(
                "- {mark} **{}**: {}\n",
                check.check,
                check.message.replace('`', "'")
            ));
            if !check.passed {
                for file in check.files.iter().take(10) {
                    out.push_str(&format!("  - {}\n", code(file)));
                }
                if check.files.len() > 10 {
                    out.push_str(&format!("  - … and {} more\n", check.files.len() - 10));
                }
            }
        }
        out
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check's name (`leakage`, ...).
    pub check: String,
    /// The threshold in force: findings allowed, or for `imbalance` the largest ratio allowed.
    pub threshold: f64,
    /// What was measured: findings, or for `imbalance` the ratio (null when infinite).
    pub value: Option<f64>,
    pub passed: bool,
    /// In plain words: "3 pairs of copies across splits in the report (allowed: 0)".
    pub message: String,
    /// The files (or, for `imbalance`, the classes) the findings concern, each once.
    pub files: Vec<String>,
}

fn evaluate_one(check: &GateCheck, findings: &Findings, default_imbalance: f64) -> CheckOutcome {
    let name = check.check.name().to_string();
    if check.check == Check::Imbalance {
        let threshold = check.threshold.unwrap_or(default_imbalance);
        return match &findings.imbalance {
            None => CheckOutcome {
                check: name,
                threshold,
                value: Some(1.0),
                passed: true,
                message: "fewer than two classes".to_string(),
                files: Vec::new(),
            },
            Some(imbalance) => {
                let ratio = imbalance.ratio();
                let passed = ratio <= threshold;
                CheckOutcome {
                    check: name,
                    threshold,
                    value: ratio.is_finite().then_some((ratio * 100.0).round() / 100.0),
                    passed,
                    message: format!(
                        "largest class `{}` ({}) over smallest `{}` ({}): {} (allowed: {threshold})",
                        imbalance.largest.0.replace('`', "'"),
                        imbalance.largest.1,
                        imbalance.smallest.0.replace('`', "'"),
                        imbalance.smallest.1,
                        if ratio.is_finite() {
                            format!("{ratio:.2}x")
                        } else {
                            "no images in the smallest".to_string()
                        }
                    ),
                    files: if passed {
                        Vec::new()
                    } else {
                        vec![imbalance.largest.0.clone(), imbalance.smallest.0.clone()]
                    },
                }
            }
        };
    }
    let list = match check.check {
        Check::Leakage => &findings.leakage,
        Check::ConflictingLabels => &findings.conflicting_labels,
        Check::Unreadable => &findings.unreadable,
        Check::NewDuplicates => &findings.duplicates,
        Check::LabelIssues => &findings.label_issues,
        Check::Imbalance => unreachable!("handled above"),
    };
    let threshold = check.threshold.unwrap_or(0.0);
    let count = list.len();
    let passed = count as f64 <= threshold;
    let (one, many) = check.check.noun();
    let mut files: Vec<String> = Vec::new();
    for file in list.iter().flatten() {
        if !files.contains(file) {
            files.push(file.clone());
        }
    }
    CheckOutcome {
        check: name,
        threshold,
        value: Some(count as f64),
        passed,
        message: format!(
            "{count} {} {} (allowed: {threshold})",
            if count == 1 { one } else { many },
            findings.scope
        ),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_parses_with_thresholds_and_a_repeated_check_keeps_the_last() {
        let gate = Gate::parse_list(["leakage,imbalance=3.5", "leakage=2,"]).unwrap();
        assert_eq!(gate.describe(), "imbalance=3.5,leakage=2");
        let err = Gate::parse_list(["leakge"]).unwrap_err();
        assert!(
            err.contains("leakge") && err.contains("conflicting-labels"),
            "{err}"
        );
        assert!(Gate::parse_list(["unreadable=-1"]).is_err());
        assert!(Gate::parse_list(["unreadable=1.5"]).is_err());
        assert!(Gate::parse_list(["imbalance=0.5"]).is_err());
        assert!(Gate::parse_list(["imbalance=x"]).is_err());
    }

    #[test]
    fn counts_fail_above_the_threshold_and_name_their_files() {
        let findings = Findings {
            scope: "in the report",
            leakage: vec![
                vec!["test/a.png".into(), "train/b.png".into()],
                vec!["test/a.png".into(), "train/c.png".into()],
            ],
            ..Findings::default()
        };
        let strict = Gate::parse_list(["leakage,unreadable"]).unwrap();
        let outcome = strict.evaluate(&findings, 3.0);
        assert!(!outcome.passed);
        assert_eq!(outcome.failed().count(), 1);
        let leak = &outcome.checks[0];
        assert_eq!(leak.value, Some(2.0));
        assert_eq!(leak.files, ["test/a.png", "train/b.png", "train/c.png"]);
        assert!(leak.message.starts_with("2 pairs"), "{}", leak.message);
        assert!(outcome.checks[1].passed);
        let lenient = Gate::parse_list(["leakage=2"]).unwrap();
        assert!(lenient.evaluate(&findings, 3.0).passed);
    }

    #[test]
    fn imbalance_uses_the_default_ratio_unless_given() {
        let counts = [("a".to_string(), 40), ("b".to_string(), 10)];
        let findings = Findings {
            imbalance: Imbalance::of(counts.iter().map(|(c, n)| (c, *n))),
            ..Findings::default()
        };
        let gate = Gate::parse_list(["imbalance"]).unwrap();
        assert!(!gate.evaluate(&findings, 3.0).passed);
        assert!(gate.evaluate(&findings, 4.0).passed);
        let given = Gate::parse_list(["imbalance=5"]).unwrap();
        let outcome = given.evaluate(&findings, 3.0);
        assert!(outcome.passed);
        assert_eq!(outcome.checks[0].value, Some(4.0));
    }
}
