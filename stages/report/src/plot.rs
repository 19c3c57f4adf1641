//! The report's charts, drawn with plotters' SVG backend into strings that the page inlines.
//! Legends are left to the page (HTML chips next to each chart), so they never cover data.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Series colours, one per miner (SaHa first) or per before/after.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
pub const POSITIVE: RGBColor = RGBColor(44, 160, 44);
pub const NEGATIVE: RGBColor = RGBColor(214, 39, 40);
pub const BEFORE: RGBColor = RGBColor(158, 166, 176);
pub const AFTER: RGBColor = RGBColor(31, 119, 180);
const GRID: RGBColor = RGBColor(232, 234, 237);
const FONT: &str = "sans-serif";

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Renders `draw` on a white `w` x `h` SVG canvas.
fn svg(w: u32, h: u32, draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Two overlaid histograms on one x range: shares (0..1) of each group per bin.
pub fn similarity_histogram(pos: &[f64], neg: &[f64], lo: f64, hi: f64, y_max: f64) -> Result<String> {
    svg(540, 250, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(46)
            .build_cartesian_2d(lo..hi, 0.0..(y_max * 100.0 * 1.08).max(1.0))
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .x_desc("cosine similarity to the anchor query")
            .y_desc("% of group")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_labels(10)
            .y_labels(6)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let width = (hi - lo) / pos.len().max(1) as f64;
        for (shares, color) in [(neg, NEGATIVE), (pos, POSITIVE)] {
            chart
                .draw_series(shares.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(i, s)| {
                    let x0 = lo + i as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, s * 100.0)], color.mix(0.55).filled())
                }))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Clusters per size (anchor included): a bar per size, whole sizes on the axis. Bars are drawn
/// in size order (plotters' Histogram element goes through a HashMap, so its output order varies).
pub fn size_histogram(sizes: &[(u32, u32)], color: RGBColor) -> Result<String> {
    let max_size = sizes.iter().map(|s| s.0).max().unwrap_or(1).max(1);
    let max_count = sizes.iter().map(|s| s.1).max().unwrap_or(1).max(1);
    svg(360, 210, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.5..max_size as f64 + 0.5, 0.0..max_count as f64 * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .x_desc("cluster size (anchor + negatives)")
            .y_desc("clusters")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .x_labels(max_size.min(16) as usize)
            .y_labels(5)
            .x_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(sizes.iter().map(|&(size, count)| {
                let x = size as f64;
                Rectangle::new([(x - 0.4, 0.0), (x + 0.4, count as f64)], color.mix(0.8).filled())
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// One series of a grouped bar chart: a value (or none) per category.
pub struct Bars<'a> {
    pub color: RGBColor,
    pub values: &'a [Option<f64>],
}

/// Horizontal grouped bars, one group per category, first category on top; each bar carries its
/// value as text. Values are drawn as they are (shares 0..1 are scaled by the caller's `scale`).
pub fn grouped_hbars(
    categories: &[String],
    series: &[Bars],
    x_max: f64,
    x_desc: &str,
    value: &dyn Fn(f64) -> String,
) -> Result<String> {
    let n = categories.len().max(1);
    let k = series.len().max(1);
    let row = (k as u32 * 13 + 12).max(26);
    let height = 60 + n as u32 * row;
    let label_width = categories.iter().map(|c| c.chars().count()).max().unwrap_or(4) as u32 * 7 + 14;
    // Category i is centred on y = n - 1 - i, so the first one is at the top; ticks fall on whole
    // numbers (at most n of them on this range), and only those get a name.
    let name_at = move |y: &f64| -> String {
        if (y - y.round()).abs() > 1e-6 {
            return String::new();
        }
        let i = n as f64 - 1.0 - y.round();
        if i < 0.0 {
            return String::new();
        }
        categories.get(i as usize).cloned().unwrap_or_default()
    };
    svg(1060, height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .margin_right(30)
            .x_label_area_size(36)
            .y_label_area_size(label_width.min(260))
            .build_cartesian_2d(0.0..x_max, -0.5..n as f64 - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .x_desc(x_desc)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_labels(11)
            .y_labels(n)
            .x_label_formatter(&|v| value(*v))
            .y_label_formatter(&name_at)
            .draw()
            .map_err(err)?;
        let band = 0.8 / k as f64;
        for (j, s) in series.iter().enumerate() {
            let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
                let top = (n - 1 - i) as f64 + 0.4 - j as f64 * band;
                v.map(|v| (v, top))
            });
            chart
                .draw_series(
                    bars.clone().map(|(v, top)| {
                        Rectangle::new([(0.0, top - band * 0.92), (v.min(x_max), top)], s.color.filled())
                    }),
                )
                .map_err(err)?;
            chart
                .draw_series(bars.map(|(v, top)| {
                    Text::new(
                        value(v),
                        (v.min(x_max), top - band * 0.46),
                        TextStyle::from((FONT, 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
                    )
                }))
                .map_err(err)?;
            // "n/a" where the series has no value for a category.
            chart
                .draw_series(s.values.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(i, _)| {
                    let top = (n - 1 - i) as f64 + 0.4 - j as f64 * band;
                    Text::new(
                        "n/a",
                        (0.0, top - band * 0.46),
                        TextStyle::from((FONT, 11).into_font())
                            .color(&RGBColor(120, 120, 120))
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    )
                }))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// A curve: its points, colour and stroke width.
pub type Line = (Vec<(f64, f64)>, RGBColor, u32);

/// Curves on shared axes; `x_fmt` and `y_fmt` format the ticks.
pub fn lines(
    series: &[Line],
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(f64) -> String,
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<String> {
    let all = || series.iter().flat_map(|s| s.0.iter());
    let (x0, x1) = bounds(all().map(|p| p.0));
    let (y0, y1) = bounds(all().map(|p| p.1));
    let pad = (y1 - y0) * 0.06;
    let (y0, y1) = (if y0 >= 0.0 { (y0 - pad).max(0.0) } else { y0 - pad }, y1 + pad);
    svg(540, 250, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .margin_right(18)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|v| x_fmt(*v))
            .y_label_formatter(&|v| y_fmt(*v))
            .draw()
            .map_err(err)?;
        for (points, color, width) in series {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(*width)))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Min and max of finite values, widened when they coincide.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg() {
        let h = similarity_histogram(&[0.0, 1.0], &[0.5, 0.5], -1.0, 1.0, 1.0).unwrap();
        assert!(h.starts_with("<svg") && h.contains("<rect"), "{h}");
        let s = size_histogram(&[(2, 3), (16, 1)], PALETTE[0]).unwrap();
        assert!(s.contains("<rect"));
        let b = grouped_hbars(
            &["a".into(), "b".into()],
            &[Bars {
                color: BEFORE,
                values: &[Some(0.5), None],
            }],
            1.0,
            "share",
            &|v| format!("{:.0}%", v * 100.0),
        )
        .unwrap();
        assert!(b.contains(">\na\n<") && b.contains("n/a") && b.contains("50%"), "{b}");
        let l = lines(
            &[(vec![(1.0, 2.0), (2.0, 1.0)], AFTER, 2)],
            "step",
            "loss",
            &|v| format!("{v:.0}"),
            &|v| format!("{v:.1}"),
        )
        .unwrap();
        assert!(l.contains("<polyline"), "{l}");
        // A single point or constant series still gets a non-empty range.
        assert_eq!(bounds([3.0].into_iter()), (2.7, 3.3));
        assert_eq!(bounds(std::iter::empty()), (0.0, 1.0));
    }
}
