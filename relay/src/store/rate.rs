//! Rate limiting as data: which [`Limit`] applies, whose [`Bucket`] it counts, the [`Rate`], and
//! the GCRA step both stores share. Owns the limits' names (metric labels and the words in a 429);
//! the numbers come from the configuration, the bucket storage from each store.

use std::net::IpAddr;

use approvd_proto::ids::PublicKey;
use approvd_proto::DeviceId;

/// The relay's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Failed authentications per source IP (guessing keys or signatures).
    AuthFailuresPerIp,
    /// Authenticated requests per caller key (NAS or device).
    RequestsPerCaller,
    /// Challenges per target device (push-bombing defence).
    ChallengesPerDevice,
    /// Push-registration refreshes per device (each one posts a mailbox notice).
    RefreshesPerDevice,
    /// Pairing slots and challenges created per source IP: keys cost nothing to make, so
    /// per-key limits alone do not bound what one client can create.
    CreationsPerIp,
    /// Pairing slots and challenges created by everyone together: the relay's ceiling.
    CreationsGlobal,
    /// Pushes forwarded by one downstream relay (named by its forwarding token's `sub`).
    ForwardsPerDownstream,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 7] = [
        Limit::AuthFailuresPerIp,
        Limit::RequestsPerCaller,
        Limit::ChallengesPerDevice,
        Limit::RefreshesPerDevice,
        Limit::CreationsPerIp,
        Limit::CreationsGlobal,
        Limit::ForwardsPerDownstream,
    ];

    /// The `limit` label of `approvd_rate_limited_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            Limit::AuthFailuresPerIp => "auth_failures_per_ip",
            Limit::RequestsPerCaller => "requests_per_caller",
            Limit::ChallengesPerDevice => "challenges_per_device",
            Limit::RefreshesPerDevice => "refreshes_per_device",
            Limit::CreationsPerIp => "creations_per_ip",
            Limit::CreationsGlobal => "creations_global",
            Limit::ForwardsPerDownstream => "forwards_per_downstream",
        }
    }

    /// What a 429 says was exceeded.
    pub fn description(self) -> &'static str {
        match self {
            Limit::AuthFailuresPerIp => "failed authentications per IP",
            Limit::RequestsPerCaller => "requests per caller",
            Limit::ChallengesPerDevice => "challenges per device",
            Limit::RefreshesPerDevice => "push refreshes per device",
            Limit::CreationsPerIp => "pairings and challenges created per IP",
            Limit::CreationsGlobal => "pairings and challenges created on this relay",
            Limit::ForwardsPerDownstream => "pushes forwarded per downstream relay",
        }
    }
}

/// One counter of a [`Limit`]: the limit and whom it counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    AuthFailures(IpAddr),
    Caller(PublicKey),
    DeviceChallenges(DeviceId),
    DeviceRefreshes(DeviceId),
    CreationsFrom(IpAddr),
    Creations,
    /// A downstream relay, by its forwarding token's `sub`.
    Forwards(String),
}

impl Bucket {
    /// The limit this bucket counts for.
    pub fn limit(&self) -> Limit {
        match self {
            Bucket::AuthFailures(_) => Limit::AuthFailuresPerIp,
            Bucket::Caller(_) => Limit::RequestsPerCaller,
            Bucket::DeviceChallenges(_) => Limit::ChallengesPerDevice,
            Bucket::DeviceRefreshes(_) => Limit::RefreshesPerDevice,
            Bucket::CreationsFrom(_) => Limit::CreationsPerIp,
            Bucket::Creations => Limit::CreationsGlobal,
            Bucket::Forwards(_) => Limit::ForwardsPerDownstream,
        }
    }
}

/// A token-bucket rate (GCRA): `per_minute` requests per minute, bursts up to `per_minute`.
/// Computed in microseconds, so a rate up to [`Rate::MAX_PER_MINUTE`] keeps a non-zero interval
/// (with milliseconds, 60,001/min and more had an interval of 0 and refused any request stamped
/// out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl Rate {
    /// The highest configurable rate: an interval of 6 µs.
    pub const MAX_PER_MINUTE: u32 = 10_000_000;

    /// Microseconds between two requests at the steady rate (at least 1).
    pub fn interval_us(self) -> u64 {
        (60_000_000 / u64::from(self.per_minute.max(1))).max(1)
    }

    /// The burst window: how far ahead of now the bucket may be booked, µs.
    pub fn burst_us(self) -> u64 {
        self.interval_us() * u64::from(self.per_minute.max(1))
    }
}

/// Answer of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// When denied: how long until one request is allowed again (rounded up to a millisecond).
    pub retry_after_ms: u64,
}

/// The GCRA step shared by every implementation: from the bucket's stored "theoretical arrival
/// time" (`tat_us`, or none), decide and return the new TAT to store (when allowed and
/// `consume`). All times are unix microseconds.
pub fn gcra(
    rate: Rate,
    tat_us: Option<u64>,
    now_us: u64,
    consume: bool,
) -> (RateDecision, Option<u64>) {
    let base = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = base + rate.interval_us();
    let ahead = new_tat - now_us;
    if ahead > rate.burst_us() {
        let decision = RateDecision {
            allowed: false,
            retry_after_ms: (ahead - rate.burst_us()).div_ceil(1000),
        };
        return (decision, None);
    }
    let decision = RateDecision {
        allowed: true,
        retry_after_ms: 0,
    };
    (decision, consume.then_some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_paces() {
        let rate = Rate { per_minute: 5 };
        let mut tat = None;
        for _ in 0..5 {
            let (decision, new_tat) = gcra(rate, tat, 1_000_000_000, true);
            assert!(decision.allowed);
            tat = new_tat;
        }
        let (decision, _) = gcra(rate, tat, 1_000_000_000, true);
        assert_eq!(
            decision,
            RateDecision {
                allowed: false,
                retry_after_ms: 12_000
            }
        );
        // After one interval, one more is allowed.
        let (decision, _) = gcra(rate, tat, 1_012_000_000, true);
        assert!(decision.allowed);
        // A check does not consume.
        let (decision, new_tat) = gcra(rate, None, 0, false);
        assert!(decision.allowed && new_tat.is_none());
    }

    #[test]
    fn high_rates_allow_requests_stamped_out_of_order() {
        // 1,000,000 per minute: concurrent requests of one key reach the store out of order.
        let rate = Rate {
            per_minute: 1_000_000,
        };
        let now = 1_800_000_000_000_000;
        let mut tat = None;
        for offset in [500, 0, 900, 100, 300, 200] {
            let (decision, new_tat) = gcra(rate, tat, now + offset, true);
            assert!(decision.allowed, "stamped {offset} µs later");
            tat = new_tat;
        }
        let fastest = Rate {
            per_minute: Rate::MAX_PER_MINUTE,
        };
        assert_eq!(fastest.interval_us(), 6);
        let (decision, _) = gcra(fastest, Some(now + 10), now, true);
        assert!(decision.allowed);
    }

    #[test]
    fn every_bucket_names_its_limit() {
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let buckets = [
            Bucket::AuthFailures(IpAddr::from([127, 0, 0, 1])),
            Bucket::Caller(key),
            Bucket::DeviceChallenges(DeviceId(key)),
            Bucket::DeviceRefreshes(DeviceId(key)),
            Bucket::CreationsFrom([192, 0, 2, 1].into()),
            Bucket::Creations,
            Bucket::Forwards("home-relay".to_owned()),
        ];
        let labels: Vec<&str> = buckets
            .iter()
            .map(|bucket| bucket.limit().metric_label())
            .collect();
        assert_eq!(
            labels,
            [
                "auth_failures_per_ip",
                "requests_per_caller",
                "challenges_per_device",
                "refreshes_per_device",
                "creations_per_ip",
                "creations_global",
                "forwards_per_downstream"
            ]
        );
    }
}
