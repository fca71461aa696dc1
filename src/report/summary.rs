//! summary.md: a short Markdown digest to paste into a pull-request comment.
//! Dataset strings are put in code spans with backticks removed, so they cannot inject
//! Markdown or HTML into the comment.

use super::view::ReportView;
use crate::gate::GateOutcome;

fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('\n', " "))
}

pub fn build(view: &ReportView, gate: &GateOutcome) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "## aldente report: {}\n\n",
        code(&view.dataset_name)
    ));
    for fact in &view.overview.facts {
        out.push_str(&format!("- **{}**: {}\n", fact.label, fact.value));
    }
    out.push_str(&gate.markdown());
    out.push('\n');
    if view.overview.alerts.is_empty() {
        out.push_str("No alerts.\n");
    } else {
        out.push_str("### Alerts\n\n");
        for alert in &view.overview.alerts {
            let marker = if alert.level == "warn" {
                "⚠️"
            } else {
                "ℹ️"
            };
            // Alerts quote class names in backticks; strip any backtick a name carried.
            out.push_str(&format!("- {marker} {}\n", alert.text.replace('\n', " ")));
        }
    }
    if let Some(pair) = view.pixels.alike.first() {
        out.push_str(&format!(
            "\n### Findings\n\n- Most alike classes by colour: {} and {} (distance {})\n",
            code(&pair.a),
            code(&pair.b),
            pair.distance
        ));
        if view.properties.greyscale_count != "0" {
            out.push_str(&format!(
                "- Greyscale images in a colour dataset: {}\n",
                view.properties.greyscale_count
            ));
        }
    }
    let leakage = &view.duplicates.leakage.shown;
    if !leakage.is_empty() {
        out.push_str(&format!(
            "\n### Closest copies across splits ({} pairs in all)\n\n",
            view.duplicates.leakage.total
        ));
        for pair in leakage.iter().take(5) {
            out.push_str(&format!(
                "- {} ↔ {}: {} (distance {})\n",
                code(&pair.a.path),
                code(&pair.b.path),
                pair.kind,
                pair.distance
            ));
        }
    }
    if !view.embed.pending {
        out.push_str(&format!(
            "\n### Label issues\n\n{}\n",
            view.embed.summary.replace('\n', " ")
        ));
        for group in &view.embed.issue_groups {
            if !group.title.is_empty() {
                out.push_str(&format!("\n{}\n", group.title));
            }
            for issue in group.issues.iter().take(5) {
                out.push_str(&format!(
                    "- {}: {} → {} (score {})\n",
                    code(&issue.image.path),
                    code(&issue.given),
                    code(&issue.suggested),
                    issue.score
                ));
            }
        }
    }
    out.push_str(&format!(
        "\n### Normalisation constants\n\n```python\ntransforms.Normalize(mean={}, std={})\n```\n",
        view.pixels.normalisation.mean, view.pixels.normalisation.std
    ));
    if !view.files.unreadable.is_empty() {
        out.push_str("\n### Unreadable files\n\n");
        for note in view.files.unreadable.iter().take(10) {
            out.push_str(&format!(
                "- {}: {}\n",
                code(&note.path),
                note.reason.replace('\n', " ")
            ));
        }
        if view.files.unreadable.len() > 10 {
            out.push_str(&format!(
                "- … and {} more\n",
                view.files.unreadable.len() - 10
            ));
        }
    }
    out.push_str(&format!(
        "\n<sub>aldente {} — full report in report.html, findings in report.json</sub>\n",
        view.tool_version
    ));
    out
}
