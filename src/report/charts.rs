//! Charts as inline SVG strings, drawn with plotters' SVG backend. Only numbers and class
//! names go in. The SVG is marked safe in the template, so it must never carry a raw name:
//! plotters-svg escapes every text it draws (a test below guards that).

use plotters::prelude::*;

/// Palette for splits (train, val, test, ...), the one definition of these colours: the
/// class-balance bars and the legend above them both take theirs from [`split_color`].
const SPLIT_COLORS: &[RGBColor] = &[
    RGBColor(66, 110, 170),
    RGBColor(230, 145, 56),
    RGBColor(90, 160, 90),
    RGBColor(180, 80, 160),
];

/// The property histograms take turns through the first three split colours.
pub const PROPERTY_COLORS: &[RGBColor] = SPLIT_COLORS.split_at(3).0;

/// The colour of the split at `index` in the dataset's split order.
pub fn split_color(index: usize) -> RGBColor {
    SPLIT_COLORS[index % SPLIT_COLORS.len()]
}

/// A horizontal stacked bar chart: one bar per class, one segment per split.
pub fn class_balance(classes: &[String], counts: &[Vec<usize>]) -> String {
    let rows = classes.len().max(1);
    let height = (rows as u32 * 22 + 50).min(4000);
    let width = 720u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = counts
            .iter()
            .map(|row| row.iter().sum::<usize>())
            .max()
            .unwrap_or(1)
            .max(1);
        let labels: Vec<String> = classes.iter().map(|c| truncate(c, 22)).collect();
        let chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(150)
            .build_cartesian_2d(
                0usize..(max + max / 20 + 1),
                (0usize..rows).into_segmented(),
            );
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&|y| match y {
                // Row 0 is drawn at the top: the chart's y axis grows upwards.
                SegmentValue::CenterOf(y) => rows
                    .checked_sub(1 + *y)
                    .and_then(|i| labels.get(i))
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("images")
            .label_style(("sans-serif", 13))
            .draw();
        for (row, per_split) in counts.iter().enumerate() {
            let y = rows - 1 - row;
            let mut start = 0;
            for (s, &n) in per_split.iter().enumerate() {
                let color = split_color(s);
                let mut bar = Rectangle::new(
                    [
                        (start, SegmentValue::Exact(y)),
                        (start + n, SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                );
                bar.set_margin(2, 2, 0, 0);
                let _ = chart.draw_series(std::iter::once(bar));
                start += n;
            }
        }
        let _ = root.present();
    }
    svg
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// A small bar histogram of a property: `counts` in equal-width bins from `min` to `max`.
pub fn distribution(counts: &[usize], min: f64, max: f64, color: RGBColor) -> String {
    let (width, height) = (300u32, 150u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        let bins = counts.len().max(1);
        let span = if max > min { max - min } else { 1.0 };
        let chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(44)
            .build_cartesian_2d(min..(min + span), 0usize..(top + top / 10 + 1));
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .x_labels(4)
            .y_labels(3)
            .x_label_formatter(&|x| axis_number(*x, span))
            .y_label_formatter(&|y| count_label(*y))
            .label_style(("sans-serif", 11))
            .draw();
        let step = span / bins as f64;
        let _ = chart.draw_series(counts.iter().enumerate().map(|(i, &n)| {
            let x0 = min + step * i as f64;
            Rectangle::new([(x0, 0), (x0 + step * 0.92, n)], color.filled())
        }));
        let _ = root.present();
    }
    svg
}

/// The colours of the two versions in `aldente diff`'s overlaid histograms: the old one a
/// grey area, the new one a blue outline on top.
pub const BEFORE_COLOR: RGBColor = RGBColor(150, 150, 150);
pub const AFTER_COLOR: RGBColor = SPLIT_COLORS[0];

/// Two histograms of one property over the same bins, overlaid: each as the share of its
/// own version's images (the versions may differ in size), `before` as a filled grey area,
/// `after` as a blue step line on top.
pub fn overlaid_distribution(before: &[usize], after: &[usize], min: f64, max: f64) -> String {
    let (width, height) = (300u32, 150u32);
    let share = |counts: &[usize]| -> Vec<f64> {
        let total = counts.iter().sum::<usize>().max(1) as f64;
        counts.iter().map(|&n| 100.0 * n as f64 / total).collect()
    };
    let (before, after) = (share(before), share(after));
    let bins = before.len().max(after.len()).max(1);
    let top = before
        .iter()
        .chain(&after)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let span = if max > min { max - min } else { 1.0 };
    let step = span / bins as f64;
    // A step outline: up and across each bin.
    let outline = |shares: &[f64]| -> Vec<(f64, f64)> {
        let mut points = vec![(min, 0.0)];
        for (i, &v) in shares.iter().enumerate() {
            let x0 = min + step * i as f64;
            points.push((x0, v));
            points.push((x0 + step, v));
        }
        points.push((min + step * shares.len() as f64, 0.0));
        points
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(40)
            .build_cartesian_2d(min..(min + span), 0f64..top * 1.1);
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .x_labels(4)
            .y_labels(3)
            .x_label_formatter(&|x| axis_number(*x, span))
            .y_label_formatter(&|y| format!("{y:.0}%"))
            .label_style(("sans-serif", 11))
            .draw();
        let _ = chart.draw_series(AreaSeries::new(
            outline(&before),
            0.0,
            BEFORE_COLOR.mix(0.45).filled(),
        ));
        let _ = chart.draw_series(LineSeries::new(
            outline(&after),
            AFTER_COLOR.stroke_width(2),
        ));
        let _ = root.present();
    }
    // Inline in HTML the namespace is implied; without it diff.html holds no URL at all,
    // which its test checks.
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// R, G, B and brightness histograms of one class as four lines.
pub fn color_histogram(red: &[f64], green: &[f64], blue: &[f64], luma: &[f64]) -> String {
    let (width, height) = (260u32, 120u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = red
            .iter()
            .chain(green)
            .chain(blue)
            .chain(luma)
            .copied()
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let bins = red.len().max(1);
        let chart = ChartBuilder::on(&root)
            .margin(4)
            .x_label_area_size(16)
            .y_label_area_size(8)
            .build_cartesian_2d(0f64..256f64, 0f64..top * 1.05);
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(3)
            .y_labels(0)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 10))
            .draw();
        for (values, color) in [
            (red, RGBColor(214, 39, 40)),
            (green, RGBColor(44, 160, 44)),
            (blue, RGBColor(31, 119, 180)),
            (luma, RGBColor(60, 60, 60)),
        ] {
            let _ = chart.draw_series(LineSeries::new(
                // Bin centres on the 0..255 value scale.
                values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((i as f64 + 0.5) * 256.0 / bins as f64, v)),
                color.stroke_width(2),
            ));
        }
        let _ = root.present();
    }
    svg
}

/// A tick label with as many decimals as the axis span needs to keep ticks distinct.
fn axis_number(x: f64, span: f64) -> String {
    if span >= 100.0 {
        return short_number(x);
    }
    let decimals = (2.0 - span.max(1e-9).log10().floor()).clamp(0.0, 4.0) as usize;
    format!("{x:.decimals$}")
}

/// Counts: integers, "12k" when large.
fn count_label(n: usize) -> String {
    if n >= 10_000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// 1234 -> "1.2k", 0.123 -> "0.12".
fn short_number(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_escaped_in_the_chart() {
        let svg = class_balance(
            &["<script>x</script>".to_string(), "dog".to_string()],
            &[vec![3], vec![5]],
        );
        assert!(svg.contains("<svg"), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
    }
}
