//! Charts as inline SVG strings, drawn with plotters' SVG backend. Only numbers and class
//! names go in. The SVG is marked safe in the template, so it must never carry a raw name:
//! plotters-svg escapes every text it draws (a test below guards that).

use plotters::prelude::*;

/// Palette for splits (train, val, test, ...).
const SPLIT_COLORS: &[RGBColor] = &[
    RGBColor(66, 110, 170),
    RGBColor(230, 145, 56),
    RGBColor(90, 160, 90),
    RGBColor(180, 80, 160),
];

/// A horizontal stacked bar chart: one bar per class, one segment per split.
pub fn class_balance(classes: &[String], splits: &[String], counts: &[Vec<usize>]) -> String {
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
            .draw();
        for (row, per_split) in counts.iter().enumerate() {
            let y = rows - 1 - row;
            let mut start = 0;
            for (s, &n) in per_split.iter().enumerate() {
                let color = SPLIT_COLORS[s % SPLIT_COLORS.len()];
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (start, SegmentValue::Exact(y)),
                        (start + n, SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                )));
                start += n;
            }
        }
        let _ = splits;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_escaped_in_the_chart() {
        let svg = class_balance(
            &["<script>x</script>".to_string(), "dog".to_string()],
            &["train".to_string()],
            &[vec![3], vec![5]],
        );
        assert!(svg.contains("<svg"), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
    }
}
