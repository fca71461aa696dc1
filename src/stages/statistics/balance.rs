//! Class balance: the largest class over the smallest, counted over all splits, and whether
//! their ratio reaches `statistics.imbalance_ratio`.
//!
//! Invariants: a dataset of one class is never an alert (nothing to be out of balance with);
//! an empty class makes the ratio infinite, never a division by zero. Among equally large
//! classes the last in name order is the largest, among equally small ones the first is the
//! smallest (`max_by_key` and `min_by_key`). It reads counts only, never pixels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imbalance {
    pub largest: String,
    pub largest_count: usize,
    pub smallest: String,
    pub smallest_count: usize,
    pub ratio: f64,
    pub alert: bool,
}

pub(super) fn imbalance(
    class_counts: &BTreeMap<String, BTreeMap<String, usize>>,
    threshold: f64,
) -> Option<Imbalance> {
    let totals: Vec<(&String, usize)> = class_counts
        .iter()
        .map(|(class, splits)| (class, splits.values().sum()))
        .collect();
    let largest = totals.iter().max_by_key(|(_, n)| *n)?;
    let smallest = totals.iter().min_by_key(|(_, n)| *n)?;
    let ratio = if smallest.1 == 0 {
        f64::INFINITY
    } else {
        largest.1 as f64 / smallest.1 as f64
    };
    Some(Imbalance {
        largest: largest.0.clone(),
        largest_count: largest.1,
        smallest: smallest.0.clone(),
        smallest_count: smallest.1,
        ratio,
        alert: totals.len() > 1 && ratio >= threshold,
    })
}
