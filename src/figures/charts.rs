//! Line charts (training curves) and grouped bar charts (per-class scores).

use plotters::prelude::*;

/// One line of a chart.
pub struct Series<'a> {
    pub label: &'a str,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

pub const BLUE_: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE_: RGBColor = RGBColor(255, 127, 14);
pub const GREEN_: RGBColor = RGBColor(44, 160, 44);

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A line chart of `series` against epochs in `area`.
pub fn line_chart(area: &Area, title: &str, y_label: &str, series: &[Series]) -> DrawResult {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|p| p.1.is_finite()) {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (super::FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0f64..x_max.max(2.0), (y_min - pad)..(y_max + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels((x_max as usize).clamp(2, 12))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .y_desc(y_label)
        .label_style((super::FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font((super::FONT, 14))
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    Ok(())
}

/// Bars for each category, one bar per group side by side, values in `0..=y_max`.
pub fn grouped_bars(
    area: &Area,
    title: &str,
    y_label: &str,
    categories: &[String],
    groups: &[(&str, Vec<f64>, RGBColor)],
    y_max: f64,
) -> DrawResult {
    let n = categories.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, (super::FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0f64..n as f64, 0.0f64..y_max * 1.15)?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-6 && i < cats.len() {
                cats[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .label_style((super::FONT, 13))
        .draw()?;
    let width = 0.8 / groups.len() as f64;
    for (g, (label, values, color)) in groups.iter().enumerate() {
        let color = *color;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + g as f64 * width;
                let v = if v.is_finite() { v } else { 0.0 };
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, v)], color.filled())
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font((super::FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}
