//! The retry policy every push provider shares: bounded tries, exponential backoff with jitter,
//! `Retry-After` honoured, never a retry that would land after the challenge expired. Owns
//! timing only; providers classify their answers into [`Attempt`]s.

use std::future::Future;
use std::time::Duration;

use super::PushResult;

/// How one provider request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Final (delivered, gone, or failed for good).
    Done(PushResult),
    /// Worth another try (throttled, unavailable, network trouble), after `after` if given.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
}

/// A provider answer's `Retry-After` in seconds (the HTTP-date form is not used by APNs, FCM
/// or the push services).
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Bounded retries with backoff.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in total (first + retries).
    pub max_tries: u32,
    /// Delay before the first retry; doubles each time (with 50–100 % jitter).
    pub base_delay: Duration,
    /// Multiplies every delay (1.0 in production; tests shrink time with it).
    pub time_scale: f64,
    /// Counts each retry (`approvd_push_retries_total` for the provider using this policy).
    pub retries: Option<prometheus::IntCounter>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 4,
            base_delay: Duration::from_millis(250),
            time_scale: 1.0,
            retries: None,
        }
    }
}

fn unix_now_secs_f64() -> f64 {
    crate::clock::system_now_us() as f64 / 1e6
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based), given the provider's `Retry-After`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(1 << retry.min(16));
        let jitter = 0.5
            + f64::from(u16::from_be_bytes(approvd_proto::random_bytes::<2>()))
                / f64::from(u16::MAX)
                / 2.0;
        let backoff = backoff.mul_f64(jitter);
        backoff
            .max(retry_after.unwrap_or_default())
            .mul_f64(self.time_scale)
    }

    /// Run `attempt` until it is done, tries run out, or a retry would pass `expires` (unix s).
    pub async fn run<F, Fut>(&self, expires: u64, mut attempt: F) -> PushResult
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let mut last_reason = String::new();
        for try_number in 0..self.max_tries.max(1) {
            match attempt().await {
                Attempt::Done(result) => return result,
                Attempt::Retry { after, reason } => {
                    last_reason = reason;
                    if try_number + 1 >= self.max_tries {
                        break;
                    }
                    let delay = self.delay(try_number, after);
                    if unix_now_secs_f64() + delay.as_secs_f64() >= expires as f64 {
                        return PushResult::Failed {
                            reason: format!(
                                "not retried: the challenge would expire first ({last_reason})"
                            ),
                            alarm: false,
                        };
                    }
                    if let Some(retries) = &self.retries {
                        retries.inc();
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
        PushResult::Failed {
            reason: format!("gave up after {} tries: {last_reason}", self.max_tries),
            alarm: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_tries: 3,
            base_delay: Duration::from_millis(10),
            time_scale: 1.0,
            retries: None,
        }
    }

    fn far_future() -> u64 {
        unix_now_secs_f64() as u64 + 600
    }

    #[tokio::test]
    async fn retries_until_done_and_stops_at_max_tries() {
        let calls = AtomicU32::new(0);
        let result = policy()
            .run(far_future(), || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Attempt::Retry {
                        after: None,
                        reason: "503".into(),
                    }
                } else {
                    Attempt::Done(PushResult::Delivered)
                }
            })
            .await;
        assert_eq!(result, PushResult::Delivered);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let calls = AtomicU32::new(0);
        let result = policy()
            .run(far_future(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Attempt::Retry {
                    after: None,
                    reason: "503".into(),
                }
            })
            .await;
        assert!(
            matches!(result, PushResult::Failed { alarm: false, .. }),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn delays_grow_honour_retry_after_and_scale() {
        let policy = RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(100),
            time_scale: 1.0,
            retries: None,
        };
        for retry in 0..4 {
            let delay = policy.delay(retry, None);
            let full = Duration::from_millis(100 << retry);
            assert!(
                delay >= full / 2 && delay <= full,
                "retry {retry}: {delay:?}"
            );
        }
        assert!(policy.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        let fast = RetryPolicy {
            time_scale: 0.01,
            ..policy
        };
        assert!(fast.delay(0, Some(Duration::from_secs(3))) <= Duration::from_millis(31));
    }

    #[tokio::test]
    async fn never_retries_past_expiry() {
        let calls = AtomicU32::new(0);
        let expires = unix_now_secs_f64() as u64 + 1;
        let result = policy()
            .run(expires, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Attempt::Retry {
                    after: Some(Duration::from_secs(5)),
                    reason: "429".into(),
                }
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            matches!(&result, PushResult::Failed { reason, .. } if reason.contains("expire")),
            "{result:?}"
        );
    }
}
