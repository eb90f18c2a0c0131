//! The latency-over-time chart (SVG, plotters): end-to-end p50, p99 and max by second on a log
//! scale above, accepted events and deliveries per second below, each phase shaded and named,
//! so a regression shows at a glance.

use std::path::Path;

use plotters::prelude::*;

use crate::report::TimelinePoint;

/// A phase's span on the chart, in seconds since the first sample.
#[derive(Clone, Debug)]
pub struct Span {
    /// Its name.
    pub label: String,
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
}

fn fail(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("could not draw the chart: {error}")
}

/// Draws the chart to `path`.
pub fn draw(
    path: &Path,
    title: &str,
    timeline: &[TimelinePoint],
    spans: &[Span],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(fail)?;
    let (upper, lower) = root.split_vertically(470);
    let t_max = timeline.last().map_or(1.0, |point| point.t).max(1.0);

    let latencies: Vec<(f64, [f64; 3])> = timeline
        .iter()
        .filter_map(|point| {
            let latency = point.latency?;
            (latency.count > 0)
                .then_some((point.t, [latency.p50_ms, latency.p99_ms, latency.max_ms]))
        })
        .collect();
    let y_max = latencies
        .iter()
        .map(|(_, values)| values[2])
        .fold(10.0_f64, f64::max)
        * 1.5;
    let y_min = 1.0_f64;
    let mut chart = ChartBuilder::on(&upper)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption(
            "end-to-end latency by second of sending",
            ("sans-serif", 16),
        )
        .build_cartesian_2d(0.0..t_max, (y_min..y_max).log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .y_desc("ms (log scale)")
        .x_desc("seconds since the first sample")
        .y_label_formatter(&|value| format!("{value}"))
        .draw()
        .map_err(fail)?;
    shade(&mut chart, spans, y_min, y_max)?;
    let lines: [(&str, RGBColor, usize); 3] = [
        ("p50", RGBColor(31, 119, 180), 0),
        ("p99", RGBColor(214, 39, 40), 1),
        ("max", RGBColor(120, 120, 120), 2),
    ];
    for (label, color, index) in lines {
        chart
            .draw_series(LineSeries::new(
                latencies
                    .iter()
                    .map(|(t, values)| (*t, values[index].max(y_min))),
                color.stroke_width(2),
            ))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(fail)?;

    let rate_max = timeline
        .iter()
        .map(|point| point.accepted_per_second.max(point.deliveries_per_second))
        .fold(10.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("throughput", ("sans-serif", 16))
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .y_desc("per second")
        .x_desc("seconds since the first sample")
        .y_label_formatter(&|value| format!("{value:.0}"))
        .draw()
        .map_err(fail)?;
    shade(&mut chart, spans, 0.0, rate_max)?;
    let rates: [(&str, RGBColor, bool); 2] = [
        ("events accepted", RGBColor(44, 160, 44), true),
        ("deliveries received", RGBColor(255, 127, 14), false),
    ];
    for (label, color, accepted) in rates {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|point| {
                    let value = if accepted {
                        point.accepted_per_second
                    } else {
                        point.deliveries_per_second
                    };
                    (point.t, value)
                }),
                color.stroke_width(2),
            ))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// Shades each phase and writes its name at the top.
fn shade<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    spans: &[Span],
    bottom: f64,
    top: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64>,
{
    for (index, span) in spans.iter().enumerate() {
        let color = if index % 2 == 0 {
            RGBColor(230, 236, 245)
        } else {
            RGBColor(242, 236, 226)
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(span.from, bottom), (span.to, top)],
                color.filled(),
            )))
            .map_err(|error| anyhow::anyhow!("could not draw the chart: {error}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                span.label.clone(),
                (span.from, top),
                ("sans-serif", 12).into_font().color(&BLACK),
            )))
            .map_err(|error| anyhow::anyhow!("could not draw the chart: {error}"))?;
    }
    Ok(())
}
