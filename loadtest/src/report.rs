//! Recording and reporting: latency histograms (HdrHistogram, microseconds), errors by kind
//! (never dropped), a per-second timeline, and the three outputs — the human summary, `--json`
//! and `--plot DIR` (SVG).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency recorded exactly: a minute (anything slower is clamped and counted).
const MAX_MICROS: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid")
}

/// Latency percentiles of one histogram, milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Second {
    pub second: u64,
    pub completed: u64,
    pub p99_ms: f64,
}

#[derive(Debug)]
struct Inner {
    latencies: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    per_second: Vec<Histogram<u64>>,
}

/// Shared by every task of a run.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    /// The histogram whose samples make the timeline (e.g. `roundtrip`).
    main: &'static str,
    inner: Mutex<Inner>,
}

impl Recorder {
    pub fn new(main: &'static str) -> Self {
        Self {
            started: Instant::now(),
            main,
            inner: Mutex::new(Inner {
                latencies: BTreeMap::new(),
                errors: BTreeMap::new(),
                per_second: Vec::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record one latency in histogram `name`.
    pub fn latency(&self, name: &'static str, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        let second = self.started.elapsed().as_secs() as usize;
        let mut inner = self.inner();
        inner
            .latencies
            .entry(name)
            .or_insert_with(histogram)
            .saturating_record(micros);
        if name == self.main {
            while inner.per_second.len() <= second {
                inner.per_second.push(histogram());
            }
            inner.per_second[second].saturating_record(micros);
        }
    }

    /// Count one error of `kind` (e.g. `create: rate-limited`).
    pub fn error(&self, kind: impl Into<String>) {
        *self.inner().errors.entry(kind.into()).or_insert(0) += 1;
    }

    /// Completed samples of the main histogram so far.
    pub fn completed(&self) -> u64 {
        self.inner()
            .latencies
            .get(self.main)
            .map_or(0, Histogram::len)
    }

    pub fn error_count(&self) -> u64 {
        self.inner().errors.values().sum()
    }

    /// Percentiles per histogram, errors by kind, and the timeline.
    pub fn results(&self) -> Results {
        let inner = self.inner();
        Results {
            latency: inner
                .latencies
                .iter()
                .map(|(name, histogram)| ((*name).to_owned(), Percentiles::of(histogram)))
                .collect(),
            errors: inner.errors.clone(),
            timeline: inner
                .per_second
                .iter()
                .enumerate()
                .map(|(second, histogram)| Second {
                    second: second as u64,
                    completed: histogram.len(),
                    p99_ms: if histogram.is_empty() {
                        0.0
                    } else {
                        histogram.value_at_quantile(0.99) as f64 / 1000.0
                    },
                })
                .collect(),
            distribution: inner
                .latencies
                .get(self.main)
                .map(|histogram| {
                    (1..=999)
                        .map(|permille| {
                            let quantile = f64::from(permille) / 1000.0;
                            (
                                quantile,
                                histogram.value_at_quantile(quantile) as f64 / 1000.0,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Results {
    pub latency: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, u64>,
    pub timeline: Vec<Second>,
    /// (quantile, ms) of the main histogram, for the distribution plot.
    #[serde(skip)]
    pub distribution: Vec<(f64, f64)>,
}

/// A progress bar with the live rate, on stderr (hidden when stderr is not a terminal).
pub fn progress(duration: Duration, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} s  {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// Print the latency table and the errors (the human summary's common part).
pub fn print_results(results: &Results) {
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, p) in &results.latency {
        println!(
            "  {:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
        );
    }
    if results.errors.is_empty() {
        println!("  errors: none");
    } else {
        println!("  errors:");
        for (kind, count) in &results.errors {
            println!("    {count:>8}  {kind}");
        }
    }
}

/// Write `latency.svg` (the main latency by percentile, log scale) and `timeline.svg`
/// (completions per second and p99 per second) into `dir`.
pub fn plot(dir: &Path, title: &str, results: &Results) -> anyhow::Result<()> {
    use plotters::prelude::*;
    std::fs::create_dir_all(dir)?;

    let latency_path = dir.join("latency.svg");
    {
        let root = SVGBackend::new(&latency_path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let points: Vec<(f64, f64)> = results
            .distribution
            .iter()
            .map(|(quantile, ms)| (-(1.0 - quantile).log10(), ms.max(0.001)))
            .collect();
        let max_ms = points.iter().map(|(_, ms)| *ms).fold(0.01, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title}: latency by percentile"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..3.0_f64, (0.01..max_ms).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_label_formatter(&|x| {
                let percentile = 100.0 * (1.0 - 10_f64.powf(-x));
                format!("p{percentile:.1}")
            })
            .draw()?;
        chart.draw_series(LineSeries::new(points, &BLUE))?;
        root.present()?;
    }

    let timeline_path = dir.join("timeline.svg");
    {
        let root = SVGBackend::new(&timeline_path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let seconds = results.timeline.len().max(2) as f64;
        let max_rate = results
            .timeline
            .iter()
            .map(|second| second.completed as f64)
            .fold(1.0, f64::max)
            * 1.2;
        let max_p99 = results
            .timeline
            .iter()
            .map(|second| second.p99_ms)
            .fold(0.1, f64::max)
            * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title}: rate and p99 per second"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..seconds, 0.0..max_rate)?
            .set_secondary_coord(0.0..seconds, 0.0..max_p99);
        chart
            .configure_mesh()
            .x_desc("second")
            .y_desc("completed per second")
            .draw()?;
        chart.configure_secondary_axes().y_desc("p99 ms").draw()?;
        chart
            .draw_series(LineSeries::new(
                results
                    .timeline
                    .iter()
                    .map(|second| (second.second as f64, second.completed as f64)),
                &BLUE,
            ))?
            .label("per second")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_secondary_series(LineSeries::new(
                results
                    .timeline
                    .iter()
                    .map(|second| (second.second as f64, second.p99_ms)),
                &RED,
            ))?
            .label("p99 ms")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

/// The kind of a client error, for the error table: the relay's problem name when it sent one.
pub fn error_kind(step: &str, error: &approvd_client::ClientError) -> String {
    use approvd_client::ClientError;
    let kind = match error {
        ClientError::Relay { status, .. } => format!(
            "{status} {}",
            error.problem_name().unwrap_or("unknown-problem")
        ),
        ClientError::Network(error) if error.is_timeout() => "timeout".to_owned(),
        ClientError::Network(error) if error.is_connect() => "connect".to_owned(),
        ClientError::Network(_) => "network".to_owned(),
        ClientError::Unexpected { status, .. } => format!("unexpected {status}"),
        ClientError::Verification(_) => "verification".to_owned(),
        ClientError::Alarm(_) => "alarm".to_owned(),
        other => other.to_string(),
    };
    format!("{step}: {kind}")
}
