//! What the load test reads besides its own clocks: the relay processes' CPU time, memory and
//! open files from `/proc` (when they run on this machine), Redis's per-command call counts
//! (`INFO commandstats`), and the cost of one Ed25519 `verify_strict` on this machine — the
//! yardstick of the overhead factor.

use std::time::{Duration, Instant};

/// Linux reports CPU times in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 on every
/// architecture the relay runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A relay process on this machine.
#[derive(Debug, Clone, Copy)]
pub struct Process(pub u32);

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcessSample {
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Open file descriptors.
    pub open_files: u64,
}

impl Process {
    /// Read `/proc/<pid>`; `None` when the process is gone or not readable.
    pub fn sample(self) -> Option<ProcessSample> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
        // utime and stime are fields 14 and 15; after `)` that is index 11 and 12.
        let cpu_secs = (ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SECOND;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())?;
        let open_files = std::fs::read_dir(format!("/proc/{}/fd", self.0))
            .map(|entries| entries.count() as u64)
            .unwrap_or(0);
        Some(ProcessSample {
            cpu_secs,
            rss_bytes: rss_kib * 1024,
            open_files,
        })
    }
}

/// Readings of every relay process, summed.
pub fn sample_all(processes: &[Process]) -> anyhow::Result<ProcessSample> {
    let mut total = ProcessSample::default();
    for process in processes {
        let sample = process.sample().ok_or_else(|| {
            anyhow::anyhow!(
                "cannot read /proc/{} (is the relay running here?)",
                process.0
            )
        })?;
        total.cpu_secs += sample.cpu_secs;
        total.rss_bytes += sample.rss_bytes;
        total.open_files += sample.open_files;
    }
    Ok(total)
}

/// The Redis servers whose commands are counted (every master of a cluster).
#[derive(Debug, Clone)]
pub struct RedisServers(pub Vec<String>);

impl RedisServers {
    /// Calls per command name, summed over the servers (`INFO` itself left out).
    pub async fn command_calls(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let mut calls = std::collections::BTreeMap::new();
        for url in &self.0 {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await?;
            for (name, count) in parse_commandstats(&info) {
                *calls.entry(name).or_insert(0) += count;
            }
        }
        calls.remove("info");
        Ok(calls)
    }
}

/// `cmdstat_get:calls=12,usec=...` lines → (`get`, 12).
fn parse_commandstats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The difference of two [`RedisServers::command_calls`] readings (commands with no calls
/// in between left out).
pub fn calls_between(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, count)| {
            (
                name.clone(),
                count.saturating_sub(before.get(name).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The median time of one Ed25519 `verify_strict` of a request-sized message on this machine,
/// over `rounds` batches (the machine is shared, so the median of batches, not the mean).
pub fn verify_cost(rounds: usize) -> Duration {
    let key = approvd_proto::generate_signing_key();
    let public = approvd_proto::ids::PublicKey::from(&key);
    // About the size of a request's signature base.
    let message = vec![0x5a_u8; 300];
    let sig = approvd_proto::ids::Sig(ed25519_dalek::Signer::sign(&key, &message).to_bytes());
    const BATCH: u32 = 200;
    let mut batches: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..BATCH {
                approvd_proto::signed::verify_strict(&public, std::hint::black_box(&message), &sig)
                    .expect("a fresh signature verifies");
            }
            started.elapsed() / BATCH
        })
        .collect();
    batches.sort();
    batches[batches.len() / 2]
}

/// A relay's `/metrics` text.
async fn scrape(http: &reqwest::Client, relay: &str) -> Option<String> {
    http.get(format!("{relay}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// Sum the samples of a Prometheus metric family (every label set) from `/metrics`.
pub async fn metric(http: &reqwest::Client, relay: &str, name: &str) -> Option<f64> {
    let text = scrape(http, relay).await?;
    let mut total = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        total = Some(total.unwrap_or(0.0) + value);
    }
    total
}

/// The cumulative buckets (`le` → count) of a Prometheus histogram, summed over its label sets.
pub async fn histogram(
    http: &reqwest::Client,
    relay: &str,
    name: &str,
) -> Option<std::collections::BTreeMap<u64, f64>> {
    Some(parse_buckets(&scrape(http, relay).await?, name))
}

/// Bucket bounds are kept in nanoseconds (`+Inf` as `u64::MAX`) so they sort and add up.
fn parse_buckets(text: &str, name: &str) -> std::collections::BTreeMap<u64, f64> {
    let mut buckets = std::collections::BTreeMap::new();
    let prefix = format!("{name}_bucket{{");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|label| label.trim().strip_prefix("le=\""))
            .map(|le| le.trim_end_matches('"'))
        else {
            continue;
        };
        let bound = if le == "+Inf" {
            u64::MAX
        } else {
            match le.parse::<f64>() {
                Ok(seconds) => (seconds * 1e9).round() as u64,
                Err(_) => continue,
            }
        };
        if let Ok(count) = value.trim().parse::<f64>() {
            *buckets.entry(bound).or_insert(0.0) += count;
        }
    }
    buckets
}

/// The smallest bucket bound (ms) at or under which `quantile` of the samples between two
/// readings fall: an upper bound of that percentile. `None` without samples or past the last
/// finite bucket.
pub fn bucket_quantile(
    before: &std::collections::BTreeMap<u64, f64>,
    after: &std::collections::BTreeMap<u64, f64>,
    quantile: f64,
) -> Option<f64> {
    let delta = |bound: &u64| {
        after.get(bound).copied().unwrap_or(0.0) - before.get(bound).copied().unwrap_or(0.0)
    };
    let total = delta(&u64::MAX);
    if total <= 0.0 {
        return None;
    }
    after
        .keys()
        .filter(|bound| **bound != u64::MAX)
        .find(|bound| delta(bound) >= quantile * total)
        .map(|bound| *bound as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_give_calls_per_command() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\ncmdstat_get:calls=3,usec=1\r\n";
        assert_eq!(
            parse_commandstats(info),
            vec![("evalsha".to_owned(), 12), ("get".to_owned(), 3)]
        );
    }

    #[test]
    fn histogram_buckets_give_percentile_bounds() {
        let text = "# TYPE h histogram\nh_bucket{source=\"local\",le=\"0.0005\"} 90\nh_bucket{source=\"local\",le=\"0.001\"} 99\nh_bucket{source=\"local\",le=\"+Inf\"} 100\nh_bucket{source=\"redis\",le=\"0.0005\"} 0\nh_bucket{source=\"redis\",le=\"0.001\"} 0\nh_bucket{source=\"redis\",le=\"+Inf\"} 0\n";
        let after = parse_buckets(text, "h");
        let before = std::collections::BTreeMap::new();
        assert_eq!(bucket_quantile(&before, &after, 0.5), Some(0.5));
        assert_eq!(bucket_quantile(&before, &after, 0.99), Some(1.0));
        assert_eq!(bucket_quantile(&before, &after, 0.999), None);
        assert_eq!(bucket_quantile(&after, &after, 0.5), None);
    }

    #[test]
    fn this_process_can_be_read_from_proc() {
        let sample = Process(std::process::id()).sample().expect("own /proc");
        assert!(sample.rss_bytes > 0);
        assert!(sample.open_files > 0);
    }
}
