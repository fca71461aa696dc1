//! The Classes section: images per class and split as a table and a stacked bar chart with
//! its legend, and a few sample thumbnails per class.
//!
//! Classes appear in ingest's order (CIFAR's label order, else sorted) and splits in the
//! usual train, val, test order, in the table, the chart and the legend alike; the bars and
//! the legend take their colours from [`charts::split_color`], so they always agree. A
//! dataset without splits counts under one unnamed split and shows no legend.

use serde::Serialize;

use crate::report::charts;
use crate::text::thousands;

use super::{LegendEntry, RenderInput, Thumb, thumb};

#[derive(Debug, Serialize)]
pub struct ClassesView {
    pub splits: Vec<String>,
    pub class_rows: Vec<ClassRow>,
    pub balance_svg: String,
    pub legend: Vec<LegendEntry>,
    pub samples: Vec<ClassSamples>,
}

#[derive(Debug, Serialize)]
pub struct ClassRow {
    pub name: String,
    pub counts: Vec<String>,
    pub total: String,
    pub share: String,
}

#[derive(Debug, Serialize)]
pub struct ClassSamples {
    pub name: String,
    pub count: String,
    pub images: Vec<Thumb>,
}

pub fn build(input: &RenderInput) -> ClassesView {
    let ingest = &input.ingested.artifact;
    let stats = input.statistics;
    let split_keys: Vec<String> = if ingest.splits.is_empty() {
        vec![String::new()]
    } else {
        ingest.splits.clone()
    };
    let total_images = ingest.images.len();
    let mut class_rows = Vec::new();
    let mut balance_counts = Vec::new();
    for class in &ingest.classes {
        let per_split = stats.class_counts.get(class);
        let counts: Vec<usize> = split_keys
            .iter()
            .map(|s| per_split.and_then(|m| m.get(s)).copied().unwrap_or(0))
            .collect();
        let total: usize = counts.iter().sum();
        class_rows.push(ClassRow {
            name: class.clone(),
            counts: counts.iter().map(|&n| thousands(n as u64)).collect(),
            total: thousands(total as u64),
            share: percent(total, total_images),
        });
        balance_counts.push(counts);
    }
    let balance_svg = charts::class_balance(&ingest.classes, &balance_counts);
    let legend = ingest
        .splits
        .iter()
        .enumerate()
        .map(|(i, split)| {
            let c = charts::split_color(i);
            LegendEntry {
                name: split.clone(),
                color: format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2),
            }
        })
        .collect();

    let samples = ingest
        .classes
        .iter()
        .map(|class| {
            let indices = input.sample.per_class.get(class);
            let count = stats
                .class_counts
                .get(class)
                .map(|m| m.values().sum::<usize>())
                .unwrap_or(0);
            ClassSamples {
                name: class.clone(),
                count: thousands(count as u64),
                images: indices
                    .map(|ix| ix.iter().map(|&i| thumb(input.ingested, i)).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();

    ClassesView {
        splits: ingest.splits.clone(),
        class_rows,
        balance_svg,
        legend,
        samples,
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}
