//! The Image properties section: a histogram per measured property, the most extreme images
//! of each, greyscale images in a colour dataset, and the tables of formats, colour types and
//! most common sizes.
//!
//! Galleries show a prefix of what report.json lists (all greyscale images are there, the
//! first [`GREYSCALE_SHOWN`] here); a property every image shares gets a sentence instead of
//! a chart with a single bar.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::charts;
use crate::text::thousands;

use super::{Fact, RenderInput, Thumb, fact, thumb};

/// Greyscale images shown (all are in report.json).
const GREYSCALE_SHOWN: usize = 32;
/// Rows of the "Most common sizes" table.
const SIZES_SHOWN: usize = 12;

#[derive(Debug, Serialize)]
pub struct PropertiesView {
    pub formats: Vec<Fact>,
    pub colors: Vec<Fact>,
    pub sizes: Vec<Fact>,
    pub distributions: Vec<DistributionView>,
    pub extremes: Vec<ExtremeView>,
    pub greyscale: Vec<Thumb>,
    pub greyscale_count: String,
}

#[derive(Debug, Serialize)]
pub struct DistributionView {
    pub property: String,
    /// Empty when every image has the same value (then `constant` says it).
    pub svg: String,
    pub constant: String,
}

#[derive(Debug, Serialize)]
pub struct ExtremeView {
    pub title: String,
    pub images: Vec<Thumb>,
}

pub fn build(input: &RenderInput) -> PropertiesView {
    let stats = input.statistics;
    let mut sizes: Vec<(&String, &usize)> = stats.sizes.iter().collect();
    sizes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let sizes = sizes
        .into_iter()
        .take(SIZES_SHOWN)
        .map(|(s, n)| fact(s, thousands(*n as u64)))
        .collect();
    let distributions = stats
        .distributions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let constant = d.min == d.max;
            DistributionView {
                property: d.property.replace('_', " "),
                svg: if constant {
                    String::new()
                } else {
                    let color = charts::PROPERTY_COLORS[i % charts::PROPERTY_COLORS.len()];
                    charts::distribution(&d.counts, d.min, d.max, color)
                },
                constant: if constant {
                    format!("every image: {}", trim_number(d.min))
                } else {
                    String::new()
                },
            }
        })
        .collect();
    let extremes = stats
        .extremes
        .iter()
        .filter(|e| !e.images.is_empty())
        .map(|e| ExtremeView {
            title: e.title.clone(),
            images: e
                .images
                .iter()
                .map(|&(i, value)| Thumb {
                    note: value_note(&e.name, value),
                    ..thumb(input.ingested, i)
                })
                .collect(),
        })
        .collect();
    let greyscale = stats
        .greyscale_in_colour
        .iter()
        .take(GREYSCALE_SHOWN)
        .map(|&i| thumb(input.ingested, i))
        .collect();

    PropertiesView {
        formats: counted(&stats.formats),
        colors: counted(&stats.colors),
        sizes,
        distributions,
        extremes,
        greyscale,
        greyscale_count: thousands(stats.greyscale_in_colour.len() as u64),
    }
}

/// One row per name with its count, in the map's order.
fn counted(counts: &BTreeMap<String, usize>) -> Vec<Fact> {
    counts
        .iter()
        .map(|(name, n)| fact(name, thousands(*n as u64)))
        .collect()
}

/// Formats a property value for a caption.
fn value_note(name: &str, value: f64) -> String {
    match name {
        "odd_size" => format!("aspect {value:.2}"),
        "blurriest" => format!("{value:.0}"),
        "lowest_information" => format!("{value:.2} bits"),
        _ => format!("{value:.3}"),
    }
}

/// 32.0 -> "32", 0.25 -> "0.25".
fn trim_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}
