//! Wall-clock time for protocol checks (signature skew, expiry) and rate limits, behind a trait
//! so unit tests can fix it. Durations and timeouts use `tokio::time` instead.

/// A source of unix time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix microseconds.
    fn now_us(&self) -> u64;

    /// Unix milliseconds.
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    /// Unix seconds.
    fn now(&self) -> u64 {
        self.now_us() / 1_000_000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
