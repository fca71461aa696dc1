//! The report: Tera templates compiled into the binary, view structs built for them, the
//! machine-readable report.json and images.parquet, and summary.md.
//!
//! Templates receive only the view structs of [`view`], never internal types. Auto-escaping
//! stays on for the HTML template: every file, folder and class name from the dataset is
//! escaped. Only markup this program generated itself (its SVG charts, base64 data URIs) is
//! marked safe. Nothing in the report refers to the network.

pub mod charts;
pub mod json;
pub mod parquet;
pub mod review;
pub mod summary;
pub mod view;

use std::path::Path;

use anyhow::{Context, Result};
use xxhash_rust::xxh3::Xxh3;

/// The built-in templates: (name, contents). A templates folder given in the settings may
/// replace any of them file by file.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "report.html",
        include_str!("../../templates/report.html.tera"),
    ),
    ("style.css", include_str!("../../templates/style.css")),
    ("app.js", include_str!("../../templates/app.js")),
];

/// The templates in force: built-in ones, each replaced by a same-named file in `overrides`
/// (`report.html.tera` or `report.html`) when there is one.
pub fn templates(overrides: Option<&Path>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (name, builtin) in BUILTIN_TEMPLATES {
        let mut text = builtin.to_string();
        if let Some(dir) = overrides {
            for candidate in [format!("{name}.tera"), name.to_string()] {
                let path = dir.join(&candidate);
                if path.is_file() {
                    text = crate::fsutil::read_to_string(&path)?;
                    break;
                }
            }
        }
        out.push((name.to_string(), text));
    }
    Ok(out)
}

/// A digest of the templates in force, part of the render fingerprint.
pub fn templates_digest(templates: &[(String, String)]) -> String {
    let mut hasher = Xxh3::new();
    for (name, text) in templates {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(text.as_bytes());
        hasher.update(&[0]);
    }
    format!("{:016x}", hasher.digest())
}

/// Renders report.html from the view.
pub fn render_html(templates: &[(String, String)], view: &view::ReportView) -> Result<String> {
    let mut tera = tera::Tera::new();
    // All at once: report.html includes the others, which must be known when it is parsed.
    tera.add_raw_templates(
        templates
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    )
    .map_err(|err| anyhow::anyhow!("{err}"))
    .context("a report template has an error")?;
    // Escaping by file suffix: report.html is escaped; style.css and app.js hold no values.
    tera.autoescape_on([".html"]);
    let context =
        tera::Context::from_serialize(view).context("could not build the report context")?;
    tera.render("report.html", &context)
        .map_err(|err| anyhow::anyhow!("{err:?}"))
        .context("could not render report.html")
}
