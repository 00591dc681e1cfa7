//! Wall-clock time for protocol checks (signature skew, expiry) and rate limits, behind a trait
//! so unit tests can fix it; and the relay's one reader of `SystemTime::now`
//! ([`system_now_us`]), which the few places that need wall time outside those checks call
//! directly: a JWT's `iat`/`exp` for FCM, a forwarded push's remaining lifetime, the retry
//! deadline, a wakeup's write stamp for the latency metric. Those read the real clock on
//! purpose (a provider or another replica compares them with its own), and their tests set
//! deadlines in the message instead. Durations and timeouts use `tokio::time`. Also a file's
//! modification stamp ([`file_version`]), how files read again while running notice a change.

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
        system_now_us()
    }
}

/// Unix microseconds from the system clock (0 before 1970).
pub fn system_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix seconds from the system clock.
pub fn system_now() -> u64 {
    system_now_us() / 1_000_000
}

/// A file's modification time and length (`None`: it cannot be looked at): how the files the
/// relay reads again while running (the revocation list, the forwarding token) notice a change.
/// Here, at the bottom layer, so that both `push` and `http` may use it.
pub fn file_version(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
