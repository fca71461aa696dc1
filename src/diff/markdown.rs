//! diff.md: the diff as a pull-request comment. Dataset strings go in code spans with
//! backticks removed (as in summary.md), so a file or class name cannot inject Markdown or
//! HTML into the comment. Lists are cut at a few entries; diff.json holds them all.

use super::json::{DiffJson, ImageRef, Move};

/// Entries shown per list.
const SHOWN: usize = 10;

fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('\n', " "))
}

fn place(image: &ImageRef) -> String {
    match &image.split {
        Some(split) => format!("{}/{}", split, image.label),
        None => image.label.clone(),
    }
}

fn list<T>(out: &mut String, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!(
        "\n<details><summary>{title} ({})</summary>\n\n",
        items.len()
    ));
    for item in items.iter().take(SHOWN) {
        out.push_str(&format!("- {}\n", line(item)));
    }
    if items.len() > SHOWN {
        out.push_str(&format!(
            "- … and {} more (diff.json)\n",
            items.len() - SHOWN
        ));
    }
    out.push_str("\n</details>\n");
}

fn move_line(change: &Move) -> String {
    if change.old == change.new {
        code(&change.new.path)
    } else if change.old.path == change.new.path {
        format!(
            "{}: {} → {}",
            code(&change.new.path),
            code(&place(&change.old)),
            code(&place(&change.new))
        )
    } else {
        format!("{} → {}", code(&change.old.path), code(&change.new.path))
    }
}

pub fn build(diff: &DiffJson) -> String {
    let mut out = format!(
        "## aldente diff: {} → {}\n\n",
        code(&diff.old.root),
        code(&diff.new.root)
    );
    let s = &diff.summary;
    out.push_str(&format!(
        "{} → {} images: **{} added**, **{} removed**, **{} changed**, **{} moved**, **{} relabelled**, {} unchanged.\n",
        diff.old.images, diff.new.images, s.added, s.removed, s.changed, s.moved, s.relabelled, s.unchanged
    ));
    out.push_str(&diff.gate.markdown());

    let findings: [(&str, usize, usize); 5] = [
        (
            "Duplicate groups",
            diff.duplicates.introduced.len(),
            diff.duplicates.resolved.len(),
        ),
        (
            "Copies across splits (leakage)",
            diff.leakage.introduced.len(),
            diff.leakage.resolved.len(),
        ),
        (
            "Conflicting labels",
            diff.conflicting_labels.introduced.len(),
            diff.conflicting_labels.resolved.len(),
        ),
        (
            "Label-issue candidates",
            diff.label_issues.introduced.len(),
            diff.label_issues.resolved.len(),
        ),
        (
            "Unreadable files",
            diff.unreadable.introduced.len(),
            diff.unreadable.fixed.len(),
        ),
    ];
    out.push_str("\n### Findings\n\n| | introduced | resolved |\n|---|---:|---:|\n");
    for (name, introduced, resolved) in findings {
        out.push_str(&format!("| {name} | {introduced} | {resolved} |\n"));
    }

    let changed_classes: Vec<_> = diff
        .classes
        .iter()
        .filter(|(_, c)| {
            c.old != c.new
                || c.added + c.removed + c.changed + c.moved + c.relabelled_in + c.relabelled_out
                    > 0
        })
        .collect();
    if !changed_classes.is_empty() {
        out.push_str("\n### Classes\n\n| class | before | after | added | removed | changed | relabelled in / out |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (name, c) in changed_classes {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} / {} |\n",
                code(name),
                c.old,
                c.new,
                c.added,
                c.removed,
                c.changed,
                c.relabelled_in,
                c.relabelled_out
            ));
        }
    }

    let overall = &diff.statistics.overall;
    let fmt = |v: [f64; 3]| format!("[{:.4}, {:.4}, {:.4}]", v[0], v[1], v[2]);
    // Shown when they moved at the precision one pastes them with.
    let (mean, std) = (
        (fmt(overall.old.mean), fmt(overall.new.mean)),
        (fmt(overall.old.std), fmt(overall.new.std)),
    );
    if mean.0 != mean.1 || std.0 != std.1 {
        out.push_str(&format!(
            "\n### Normalisation constants\n\n- mean {} → {}\n- std {} → {}\n",
            mean.0, mean.1, std.0, std.1
        ));
    }

    let images = &diff.images;
    list(&mut out, "Added", &images.added, |i| {
        format!("{} ({})", code(&i.path), code(&place(i)))
    });
    list(&mut out, "Removed", &images.removed, |i| {
        format!("{} ({})", code(&i.path), code(&place(i)))
    });
    list(&mut out, "Changed pixels", &images.changed, move_line);
    list(&mut out, "Relabelled", &images.relabelled, move_line);
    list(&mut out, "Moved", &images.moved, move_line);
    list(
        &mut out,
        "Leakage introduced",
        &diff.leakage.introduced,
        |p| format!("{} ↔ {}", code(&p.a), code(&p.b)),
    );
    list(
        &mut out,
        "Unreadable files introduced",
        &diff.unreadable.introduced,
        |u| format!("{}: {}", code(&u.path), code(&u.reason)),
    );
    out.push_str(&format!(
        "\n<sub>aldente {} — side by side in diff.html, every change in diff.json</sub>\n",
        diff.tool_version
    ));
    out
}
