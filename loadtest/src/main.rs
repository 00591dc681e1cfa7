//! `approvd-loadtest`: realistic load against a running relay — full approvals by poll or by
//! push (`roundtrip`), many idle long-polls (`hold`), push fan-out (`fanout`) — with latency
//! percentiles, errors by kind, and what the approvals cost the relay: CPU from `/proc`, Redis
//! commands from `INFO commandstats`, and the overhead factor against Ed25519 verification.

mod fcm;
mod fleet;
mod probe;
mod report;
mod scenario;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::probe::{Process, RedisServers};
use crate::report::Recorder;
use crate::scenario::roundtrip::Learn;

/// Signature verifications the relay must do per approval: the four signed requests (create,
/// inbox, verdict, verdict poll), the challenge's signature and the verdict's.
const SIG_CHECKS_PER_APPROVAL: f64 = 6.0;

#[derive(Debug, Parser)]
#[command(
    name = "approvd-loadtest",
    version,
    about = "Load-test an approvd relay with simulated NASes and phones",
    long_about = "Load-test an approvd relay with simulated NASes and phones that run the real \
protocol (pairing, signed requests, sealed contexts, signed verdicts).\n\n\
Start the relay with the load-test settings first (raised rate limits, FCM pointed at this \
tool's mock):\n\n    approvd serve --config loadtest/relay.toml\n\n\
then, e.g.:\n\n    approvd-loadtest roundtrip --duration 10s --relay-pid $(pgrep -x approvd)\n\n\
Give --relay-pid for the relay's CPU and memory and --redis for Redis commands per approval. \
See BENCHMARKS.md for every measured setup."
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Full approvals: create → phone learns (poll or push) → verdict → NAS's held poll returns.
    Roundtrip(RoundtripArgs),
    /// Many idle long-polls held at once, then woken by real events; memory per held poll.
    Hold(HoldArgs),
    /// Challenges to many push-enabled phones at once; pushes per second and send latency.
    Fanout(FanoutArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Relay base URL. Give it twice to put the NASes on the first replica and the phones on
    /// the second (both must share one Redis).
    #[arg(long = "relay", default_value = "http://127.0.0.1:8080")]
    relays: Vec<String>,
    /// Pid of a relay process on this machine (repeat per replica): CPU, memory and open files
    /// are read from /proc.
    #[arg(long = "relay-pid")]
    relay_pids: Vec<u32>,
    /// Redis URL to count commands on (repeat for every master of a cluster).
    #[arg(long = "redis")]
    redis: Vec<String>,
    /// Where the FCM mock listens (the relay's --fcm-base-url; loadtest/relay.toml uses this
    /// default). Port 0 picks a free port and prints it.
    #[arg(long, default_value = "127.0.0.1:18299")]
    fcm_listen: SocketAddr,
    /// Print the results as one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write SVG plots (latency by percentile, rate and p99 per second) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RoundtripArgs {
    #[command(flatten)]
    common: Common,
    /// How long to run, e.g. 10s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// NAS identities.
    #[arg(long, default_value_t = 4)]
    nases: usize,
    /// Phones paired to each NAS.
    #[arg(long, default_value_t = 2)]
    phones: usize,
    /// Approvals in flight at once (closed loop).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Start this many approvals per second instead (open loop; latency counts from the
    /// scheduled start).
    #[arg(long)]
    rate: Option<f64>,
    /// How phones learn of a challenge.
    #[arg(long, value_enum, default_value = "poll")]
    learn: Learn,
}

#[derive(Debug, Args)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// Long-polls to hold (half inbox polls, half verdict polls).
    #[arg(long, default_value_t = 1000)]
    polls: usize,
    /// NASes (each with two phones: one whose inbox is polled, one whose challenge is awaited).
    #[arg(long, default_value_t = 20)]
    nases: usize,
    /// How long to hold them before waking them, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: Duration,
    /// The `wait` each poll asks for (must exceed --hold and the time to open them all, and
    /// be within the relay's --max-wait-secs).
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// Polls opened at once while building up.
    #[arg(long, default_value_t = 500)]
    ramp: usize,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Push-enabled phones (all paired to one NAS).
    #[arg(long, default_value_t = 100)]
    phones: usize,
    /// Targets per challenge (at most 10).
    #[arg(long, default_value_t = 10)]
    targets: usize,
    /// Challenges to send.
    #[arg(long, default_value_t = 1000)]
    challenges: usize,
    /// Challenge requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// `10s`, `2m`, `500ms`, or bare seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}`: use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let result = match cli.scenario {
        Scenario::Roundtrip(args) => roundtrip(args).await,
        Scenario::Hold(args) => hold(args).await,
        Scenario::Fanout(args) => fanout(args).await,
    };
    if let Err(error) = result {
        eprintln!("approvd-loadtest: {error:#}");
        std::process::exit(2);
    }
}

/// The relay-side readings taken before and after a run.
struct Probes {
    processes: Vec<Process>,
    redis: Option<RedisServers>,
    relays: Vec<String>,
    http: reqwest::Client,
}

struct Reading {
    process: Option<probe::ProcessSample>,
    redis: Option<std::collections::BTreeMap<String, u64>>,
    /// Requests the relays sent to Redis (their `approvd_store_round_trips_total`).
    round_trips: Option<f64>,
    /// The relays' wake-latency histogram (write → long-poll running again), summed.
    wakes: std::collections::BTreeMap<u64, f64>,
}

impl Probes {
    fn new(common: &Common) -> Self {
        Self {
            processes: common.relay_pids.iter().map(|pid| Process(*pid)).collect(),
            redis: (!common.redis.is_empty()).then(|| RedisServers(common.redis.clone())),
            relays: common.relays.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn read(&self) -> anyhow::Result<Reading> {
        let process = if self.processes.is_empty() {
            None
        } else {
            Some(probe::sample_all(&self.processes)?)
        };
        let redis = match &self.redis {
            Some(servers) => Some(servers.command_calls().await?),
            None => None,
        };
        let mut round_trips = Some(0.0);
        let mut wakes = std::collections::BTreeMap::new();
        for relay in &self.relays {
            let sent = probe::metric(&self.http, relay, "approvd_store_round_trips_total").await;
            round_trips = round_trips.zip(sent).map(|(total, sent)| total + sent);
            let buckets =
                probe::histogram(&self.http, relay, "approvd_longpoll_wake_latency_seconds")
                    .await
                    .unwrap_or_default();
            for (bound, count) in buckets {
                *wakes.entry(bound).or_insert(0.0) += count;
            }
        }
        Ok(Reading {
            process,
            redis,
            round_trips,
            wakes,
        })
    }
}

/// The cost side of a run: CPU and Redis commands per unit of work, and the overhead factor.
#[derive(Debug, serde::Serialize)]
struct Cost {
    /// One `verify_strict` on this machine, microseconds (median of batches).
    verify_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_cpu_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_cpu_ms_per_approval: Option<f64>,
    /// Relay CPU per approval ÷ (verify cost × signature checks per approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_rss_bytes: Option<u64>,
    /// Requests the relays sent to Redis per approval (a script or a pipeline counts once).
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_round_trips_per_approval: Option<f64>,
    /// Commands Redis executed per approval, those run inside scripts included.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_commands_per_approval: Option<f64>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    redis_commands: std::collections::BTreeMap<String, u64>,
    /// The relays' own wake latency (write → waiting poll running again), as bucket upper
    /// bounds of its p50 and p99 (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_wake_p50_ms_at_most: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_wake_p99_ms_at_most: Option<f64>,
}

fn cost(before: &Reading, after: &Reading, approvals: u64, verify: Duration) -> Cost {
    let per = |total: f64| (approvals > 0).then(|| total / approvals as f64);
    let cpu = before
        .process
        .zip(after.process)
        .map(|(before, after)| after.cpu_secs - before.cpu_secs);
    let cpu_per = cpu.and_then(per);
    let commands = match (&before.redis, &after.redis) {
        (Some(before), Some(after)) => probe::calls_between(before, after),
        _ => Default::default(),
    };
    Cost {
        verify_us: verify.as_secs_f64() * 1e6,
        relay_cpu_secs: cpu,
        relay_cpu_ms_per_approval: cpu_per.map(|secs| secs * 1000.0),
        overhead_factor: cpu_per
            .map(|secs| secs / (verify.as_secs_f64() * SIG_CHECKS_PER_APPROVAL)),
        relay_rss_bytes: after.process.map(|sample| sample.rss_bytes),
        redis_round_trips_per_approval: before
            .round_trips
            .zip(after.round_trips)
            .filter(|(_, after)| *after > 0.0)
            .and_then(|(before, after)| per(after - before)),
        redis_commands_per_approval: before
            .redis
            .as_ref()
            .and(per(commands.values().sum::<u64>() as f64)),
        redis_commands: commands,
        relay_wake_p50_ms_at_most: probe::bucket_quantile(&before.wakes, &after.wakes, 0.5),
        relay_wake_p99_ms_at_most: probe::bucket_quantile(&before.wakes, &after.wakes, 0.99),
    }
}

fn print_cost(cost: &Cost) {
    println!("  one verify_strict here: {:.1} µs", cost.verify_us);
    if let (Some(cpu), Some(factor)) = (cost.relay_cpu_ms_per_approval, cost.overhead_factor) {
        println!(
            "  relay CPU per approval: {cpu:.3} ms  (overhead factor {factor:.2} = CPU ÷ {SIG_CHECKS_PER_APPROVAL} verifications)"
        );
    }
    if let (Some(p50), Some(p99)) = (
        cost.relay_wake_p50_ms_at_most,
        cost.relay_wake_p99_ms_at_most,
    ) {
        println!("  relay wake latency (its histogram's buckets): p50 ≤ {p50} ms, p99 ≤ {p99} ms");
    }
    if let Some(round_trips) = cost.redis_round_trips_per_approval {
        println!("  Redis round trips per approval (relay side): {round_trips:.1}");
    }
    if let Some(commands) = cost.redis_commands_per_approval {
        let by_command: Vec<String> = cost
            .redis_commands
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        println!(
            "  Redis commands per approval (scripts' own included): {commands:.1}  ({})",
            by_command.join(", ")
        );
    }
}

/// Start the FCM mock for runs that push.
async fn mock(common: &Common, json: bool) -> anyhow::Result<fcm::FcmMock> {
    let mock = fcm::FcmMock::start(common.fcm_listen).await?;
    if !json {
        println!(
            "FCM mock on {} (the relay needs --fcm-base-url {} and a service account whose token_uri is {}/token)",
            mock.addr,
            mock.url(),
            mock.url()
        );
    }
    Ok(mock)
}

fn pairing_bar(total: usize, quiet: bool) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("  pairing [{bar:30}] {pos}/{len} phones")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

async fn pair(
    common: &Common,
    nases: usize,
    phones_per_nas: usize,
    push: bool,
) -> anyhow::Result<Vec<fleet::Pair>> {
    let bar = pairing_bar(nases * phones_per_nas, common.json);
    let ticker = bar.clone();
    let pairs = fleet::pair_all(
        &fleet::FleetSpec {
            relays: common.relays.clone(),
            nases,
            phones_per_nas,
            push,
        },
        16,
        move || ticker.inc(1),
    )
    .await
    .map_err(|error| {
        anyhow::anyhow!("pairing failed (is the relay up, with raised limits?): {error}")
    })?;
    bar.finish_and_clear();
    Ok(pairs)
}

/// Run `work` for `duration` with a live progress line fed by `recorder`.
async fn with_progress<F: std::future::Future>(
    quiet: bool,
    what: &str,
    duration: Duration,
    recorder: &Arc<Recorder>,
    work: F,
) -> F::Output {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        report::progress(duration, what)
    };
    let ticking = {
        let bar = bar.clone();
        let recorder = Arc::clone(recorder);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = recorder.completed();
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "{done} done, {}/s now, {} errors",
                    done - last,
                    recorder.error_count()
                ));
                last = done;
            }
        })
    };
    let output = work.await;
    ticking.abort();
    bar.finish_and_clear();
    output
}

fn write_plots(common: &Common, title: &str, results: &report::Results) -> anyhow::Result<()> {
    if let Some(dir) = &common.plot {
        report::plot(dir, title, results)?;
        if !common.json {
            println!(
                "  plots: {}/latency.svg, {}/timeline.svg",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

fn exit_status(results: &report::Results) -> anyhow::Result<()> {
    let errors: u64 = results.errors.values().sum();
    if errors > 0 {
        anyhow::bail!("{errors} errors (see the table above)");
    }
    Ok(())
}

async fn roundtrip(args: RoundtripArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let verify = probe::verify_cost(15);
    let mock = match args.learn {
        Learn::Push => Some(mock(common, common.json).await?),
        Learn::Poll => None,
    };
    let pairs = pair(common, args.nases, args.phones, args.learn == Learn::Push).await?;
    let recorder = Arc::new(Recorder::new("roundtrip"));
    let shared = Arc::new(scenario::roundtrip::Shared::default());
    let phones: Vec<_> = pairs
        .iter()
        .map(|pair| {
            let pushes = match (&mock, &pair.token) {
                (Some(mock), Some(token)) => {
                    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                    mock.state.register(token, sender);
                    Some(receiver)
                }
                _ => None,
            };
            tokio::spawn(scenario::roundtrip::phone(
                pair.clone(),
                args.learn,
                pushes,
                Arc::clone(&shared),
                Arc::clone(&recorder),
            ))
        })
        .collect();
    // Let the phones' first inbox polls settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probes = Probes::new(common);
    let before = probes.read().await?;
    let started = Instant::now();
    let until = started + args.duration;
    let pairs = Arc::new(pairs);
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate}/s"),
        None => format!("closed loop, {} in flight", args.concurrency),
    };
    with_progress(common.json, "roundtrip", args.duration, &recorder, async {
        match args.rate {
            Some(rate) => {
                scenario::roundtrip::open_loop(
                    Arc::clone(&pairs),
                    rate,
                    until,
                    Arc::clone(&shared),
                    Arc::clone(&recorder),
                )
                .await
            }
            None => {
                scenario::roundtrip::closed_loop(
                    Arc::clone(&pairs),
                    args.concurrency,
                    until,
                    Arc::clone(&shared),
                    Arc::clone(&recorder),
                )
                .await
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let after = probes.read().await?;
    for phone in phones {
        phone.abort();
    }
    let results = recorder.results();
    let approvals = results.latency.get("roundtrip").map_or(0, |p| p.count);
    let cost = cost(&before, &after, approvals, verify);
    let rate = approvals as f64 / elapsed.as_secs_f64();
    if common.json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": "roundtrip",
                "learn": args.learn,
                "mode": mode,
                "relays": common.relays,
                "nases": args.nases,
                "phones_per_nas": args.phones,
                "elapsed_secs": elapsed.as_secs_f64(),
                "approvals": approvals,
                "approvals_per_sec": rate,
                "sig_checks_per_approval": SIG_CHECKS_PER_APPROVAL,
                "cost": cost,
                "results": results,
                "pushes": mock.as_ref().map(|mock| mock.state.alerts.load(std::sync::atomic::Ordering::Relaxed)),
            })
        );
    } else {
        println!(
            "roundtrip ({:?}, {mode}, {} NASes × {} phones, {} relay(s)): {approvals} approvals in {:.1} s = {rate:.0}/s",
            args.learn,
            args.nases,
            args.phones,
            common.relays.len(),
            elapsed.as_secs_f64()
        );
        report::print_results(&results);
        print_cost(&cost);
    }
    write_plots(common, "roundtrip", &results)?;
    exit_status(&results)
}

async fn hold(args: HoldArgs) -> anyhow::Result<()> {
    use scenario::hold;
    let common = &args.common;
    let relay = common.relays[0].clone();
    let http = reqwest::Client::new();
    let probes = Probes::new(common);
    let pairs = pair(common, args.nases, 2, false).await?;
    let (inbox_pairs, awaited_pairs): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .enumerate()
        .partition(|(index, _)| index % 2 == 0);
    let inbox_pairs: Vec<fleet::Pair> = inbox_pairs.into_iter().map(|(_, pair)| pair).collect();
    let awaited_pairs: Vec<fleet::Pair> = awaited_pairs.into_iter().map(|(_, pair)| pair).collect();
    let recorder = Arc::new(Recorder::new("woken"));
    let mut awaited = Vec::new();
    for pair in &awaited_pairs {
        if let Some(cid) = hold::challenge(pair, &recorder).await {
            awaited.push((pair.clone(), cid));
        }
    }
    if awaited.is_empty() {
        anyhow::bail!("no challenge could be created to wait on");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = probes.read().await?;
    let (wake_sender, wake) = tokio::sync::watch::channel(None::<Instant>);
    let wake = Arc::new(wake);
    let bar = if common.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.polls as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("  opening polls [{bar:30}] {pos}/{len}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut polls = tokio::task::JoinSet::new();
    for index in 0..args.polls {
        let (wake, recorder) = (Arc::clone(&wake), Arc::clone(&recorder));
        if index % 2 == 0 {
            let pair = inbox_pairs[(index / 2) % inbox_pairs.len()].clone();
            polls.spawn(hold::inbox_poll(pair, args.wait_secs, wake, recorder));
        } else {
            let (pair, cid) = awaited[(index / 2) % awaited.len()].clone();
            polls.spawn(hold::verdict_poll(
                pair,
                cid,
                args.wait_secs,
                wake,
                recorder,
            ));
        }
        bar.inc(1);
        if index % args.ramp.max(1) == args.ramp.max(1) - 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bar.finish_and_clear();
    // Wait for the relay to hold them all (its waiters gauge), at most 30 s.
    let opened = Instant::now();
    let mut held = 0.0;
    while opened.elapsed() < Duration::from_secs(30) {
        held = probe::metric(&http, &relay, "approvd_longpoll_waiters")
            .await
            .unwrap_or(0.0);
        if held as usize >= args.polls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ramp_secs = opened.elapsed().as_secs_f64();
    // Hold, probing health and memory every second.
    let mut peak = None::<probe::ProcessSample>;
    let health = Arc::new(Recorder::new("healthz"));
    let hold_until = Instant::now() + args.hold;
    let bar = if common.json {
        indicatif::ProgressBar::hidden()
    } else {
        report::progress(args.hold, "holding")
    };
    while Instant::now() < hold_until {
        match hold::health(&http, &relay).await {
            Ok(latency) => health.latency("healthz", latency),
            Err(kind) => recorder.error(kind),
        }
        if let Some(sample) = probes.read().await?.process {
            if peak.is_none_or(|peak| sample.rss_bytes > peak.rss_bytes) {
                peak = Some(sample);
            }
        }
        bar.set_position(
            args.hold.as_secs()
                - hold_until
                    .saturating_duration_since(Instant::now())
                    .as_secs(),
        );
        bar.set_message(format!("{held:.0} polls held by the relay"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bar.finish_and_clear();
    // Wake them all with real events.
    let woken_at = Instant::now();
    let _ = wake_sender.send(Some(woken_at));
    let mut wakers = tokio::task::JoinSet::new();
    for pair in &inbox_pairs {
        let (pair, recorder) = (pair.clone(), Arc::clone(&recorder));
        wakers.spawn(async move {
            hold::challenge(&pair, &recorder).await;
        });
    }
    for (pair, _) in &awaited {
        let (pair, recorder) = (pair.clone(), Arc::clone(&recorder));
        wakers.spawn(async move { hold::approve(&pair, &recorder).await });
    }
    while wakers.join_next().await.is_some() {}
    while polls.join_next().await.is_some() {}
    let all_woken = woken_at.elapsed();
    // Close every connection (the simulated clients' pools keep them alive), then see what
    // the relay gives back.
    drop((inbox_pairs, awaited_pairs, awaited));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = probes.read().await?;
    let mut results = recorder.results();
    results.latency.extend(health.results().latency);
    let per_poll = |sample: Option<probe::ProcessSample>| {
        sample.zip(baseline.process).map(|(sample, baseline)| {
            sample.rss_bytes.saturating_sub(baseline.rss_bytes) as f64 / args.polls as f64
        })
    };
    let summary = serde_json::json!({
        "scenario": "hold",
        "polls": args.polls,
        "held_by_relay": held,
        "ramp_secs": ramp_secs,
        "hold_secs": args.hold.as_secs_f64(),
        "all_woken_secs": all_woken.as_secs_f64(),
        "rss_baseline_bytes": baseline.process.map(|s| s.rss_bytes),
        "rss_peak_bytes": peak.map(|s| s.rss_bytes),
        "rss_after_bytes": after.process.map(|s| s.rss_bytes),
        "rss_per_poll_bytes": per_poll(peak),
        "open_files_peak": peak.map(|s| s.open_files),
        "open_files_after": after.process.map(|s| s.open_files),
        "results": results,
    });
    if common.json {
        println!("{summary}");
    } else {
        println!(
            "hold: {} polls ({} held by the relay after {ramp_secs:.1} s), held {:.0} s, all woken in {:.2} s",
            args.polls,
            held,
            args.hold.as_secs_f64(),
            all_woken.as_secs_f64()
        );
        if let (Some(baseline), Some(peak), Some(after)) = (baseline.process, peak, after.process) {
            println!(
                "  relay RSS: {:.1} MB before, {:.1} MB held ({:.1} KiB per poll), {:.1} MB after;  open files {} held, {} after",
                baseline.rss_bytes as f64 / 1e6,
                peak.rss_bytes as f64 / 1e6,
                per_poll(Some(peak)).unwrap_or(0.0) / 1024.0,
                after.rss_bytes as f64 / 1e6,
                peak.open_files,
                after.open_files
            );
        }
        report::print_results(&results);
    }
    write_plots(common, "hold", &results)?;
    exit_status(&results)
}

async fn fanout(args: FanoutArgs) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    let common = &args.common;
    if args.targets == 0 || args.targets > approvd_proto::wire::MAX_TARGETS {
        anyhow::bail!(
            "--targets must be 1 to {}",
            approvd_proto::wire::MAX_TARGETS
        );
    }
    if args.phones < args.targets {
        anyhow::bail!("--phones must be at least --targets");
    }
    let mock = mock(common, common.json).await?;
    let pairs = pair(common, 1, args.phones, true).await?;
    let mut sinks = Vec::new();
    for pair in &pairs {
        if let Some(token) = &pair.token {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            mock.state.register(token, sender);
            sinks.push(receiver);
        }
    }
    let probes = Probes::new(common);
    let before = probes.read().await?;
    let recorder = Arc::new(Recorder::new("push_send"));
    let starts = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let alerts_before = mock.state.alerts.load(Ordering::Relaxed);
    mock.state.record();
    let bar = if common.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.challenges as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  fanout [{bar:30}] {pos}/{len} challenges {per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let ticker = bar.clone();
    scenario::fanout::run(
        Arc::new(pairs),
        args.challenges,
        args.targets,
        args.concurrency,
        Arc::clone(&starts),
        Arc::clone(&recorder),
        move || ticker.inc(1),
    )
    .await;
    bar.finish_and_clear();
    let expected = (args.challenges * args.targets) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.state.alerts.load(Ordering::Relaxed) - alerts_before < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = probes.read().await?;
    let arrivals = mock.state.take_arrivals();
    let starts = starts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for arrival in &arrivals {
        if let Some(start) = starts.get(&arrival.cid) {
            recorder.latency("push_send", arrival.at.saturating_duration_since(*start));
        }
    }
    let pushed = arrivals.len() as u64;
    if pushed < expected {
        recorder.error(format!(
            "push: {} of {expected} never reached the mock",
            expected - pushed
        ));
    }
    let span = arrivals
        .iter()
        .map(|arrival| arrival.at)
        .max()
        .map_or(started.elapsed(), |last| last - started);
    let per_sec = pushed as f64 / span.as_secs_f64();
    let results = recorder.results();
    let cpu = before
        .process
        .zip(after.process)
        .map(|(before, after)| after.cpu_secs - before.cpu_secs);
    let summary = serde_json::json!({
        "scenario": "fanout",
        "phones": args.phones,
        "targets": args.targets,
        "challenges": args.challenges,
        "pushes": pushed,
        "span_secs": span.as_secs_f64(),
        "pushes_per_sec": per_sec,
        "relay_cpu_us_per_push": cpu.map(|cpu| cpu * 1e6 / pushed.max(1) as f64),
        "oauth_tokens_issued": mock.state.tokens_issued.load(Ordering::Relaxed),
        "results": results,
    });
    if common.json {
        println!("{summary}");
    } else {
        println!(
            "fanout: {pushed} pushes ({} challenges × {} targets) in {:.2} s = {per_sec:.0} pushes/s",
            args.challenges,
            args.targets,
            span.as_secs_f64()
        );
        if let Some(cpu) = cpu {
            println!(
                "  relay CPU per push: {:.0} µs",
                cpu * 1e6 / pushed.max(1) as f64
            );
        }
        report::print_results(&results);
    }
    drop(sinks);
    write_plots(common, "fanout", &results)?;
    exit_status(&results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
