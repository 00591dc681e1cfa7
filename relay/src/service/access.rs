//! Request admission around the signature check: the per-IP budget of failed authentications,
//! the nonce replay cache, and the per-caller request budget. The signature itself is checked by
//! `http::auth` (it needs the HTTP message); these are the parts that need state.

use std::net::IpAddr;
use std::time::Duration;

use approvd_proto::ids::PublicKey;

use super::{Deps, Error};
use crate::store::{Admitted, Bucket, Nonce, Rate};

/// Refuse `ip` if it has used up its failed authentications (consumes nothing).
pub async fn check_ip(deps: &Deps, ip: IpAddr) -> Result<(), Error> {
    let bucket = Bucket::AuthFailures(ip);
    let decision = deps
        .store
        .check_rate(
            &bucket,
            deps.limits.rate(bucket.limit()),
            deps.clock.now_us(),
        )
        .await?;
    deps.refuse_if_limited(&bucket, decision)
}

/// Count one failed authentication from `ip`.
pub async fn record_failure(deps: &Deps, ip: IpAddr) -> Result<(), Error> {
    let bucket = Bucket::AuthFailures(ip);
    deps.store
        .take_rate(
            &bucket,
            deps.limits.rate(bucket.limit()),
            deps.clock.now_us(),
        )
        .await?;
    Ok(())
}

/// Admit a request signed by `key`: remember its nonce until a signature expiring at `expires`
/// (unix s) could no longer pass the time checks anyway, and charge the key's request budget.
/// `Ok(None)`: the nonce was used before (a replay; nothing was charged). Otherwise the
/// budget's verdict, which the caller applies after counting the authentication as good.
pub async fn admit(
    deps: &Deps,
    key: PublicKey,
    nonce: &str,
    expires: u64,
) -> Result<Option<Result<(), Error>>, Error> {
    let now = deps.clock.now();
    let ttl = expires.saturating_sub(now) + deps.limits.clock_skew_secs + 1;
    let nonce = Nonce {
        key,
        nonce: nonce.to_owned(),
    };
    let bucket = Bucket::Caller(key);
    let admitted = deps
        .store
        .admit(
            &nonce,
            Duration::from_secs(ttl),
            &bucket,
            deps.limits.rate(bucket.limit()),
            deps.clock.now_us(),
        )
        .await?;
    Ok(match admitted {
        Admitted::Replayed => None,
        Admitted::Fresh(decision) => Some(deps.refuse_if_limited(&bucket, decision)),
    })
}

/// Count one pairing slot or challenge created from `ip` (when known) and on the relay as a
/// whole: per-key budgets alone cost an attacker nothing, who can make a key per request. The
/// relay-wide budget is charged only when the address's allowed it, so one address over its
/// budget cannot use up everyone's.
pub async fn take_creation(deps: &Deps, ip: Option<IpAddr>) -> Result<(), Error> {
    let buckets: Vec<(Bucket, Rate)> = ip
        .map(Bucket::CreationsFrom)
        .into_iter()
        .chain([Bucket::Creations])
        .map(|bucket| {
            let rate = deps.limits.rate(bucket.limit());
            (bucket, rate)
        })
        .collect();
    match deps
        .store
        .take_in_order(&buckets, deps.clock.now_us())
        .await?
    {
        Some((index, decision)) => deps.refuse_if_limited(&buckets[index].0, decision),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::deps;
    use crate::store::Limit;

    #[tokio::test]
    async fn failures_from_one_ip_close_it_and_others_stay_open() {
        let (deps, _) = deps(1_700_000_000);
        let ip: IpAddr = [192, 0, 2, 7].into();
        let per_minute = deps.limits.auth_failures_per_ip.per_minute;
        for _ in 0..per_minute {
            check_ip(&deps, ip).await.expect("still open");
            record_failure(&deps, ip).await.expect("store");
        }
        match check_ip(&deps, ip).await {
            Err(Error::RateLimited {
                limit: Limit::AuthFailuresPerIp,
                retry_after_secs,
            }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        check_ip(&deps, [192, 0, 2, 8].into())
            .await
            .expect("another IP is unaffected");
    }

    #[tokio::test]
    async fn a_nonce_is_fresh_once_per_key() {
        let (deps, _) = deps(1_700_000_000);
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let other = PublicKey::from(&approvd_proto::generate_signing_key());
        let nonce = "AAAAAAAAAAAAAAAAAAAAAA";
        let admit = |key| admit(&deps, key, nonce, 1_700_000_060);
        assert!(matches!(admit(key).await, Ok(Some(Ok(())))));
        assert!(matches!(admit(key).await, Ok(None)), "a replay");
        assert!(matches!(admit(other).await, Ok(Some(Ok(())))));
    }

    #[tokio::test]
    async fn a_key_past_its_budget_is_limited_and_a_replay_costs_nothing() {
        let (deps, _) = deps(1_700_000_000);
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let per_minute = deps.limits.requests_per_caller.per_minute;
        for n in 0..per_minute {
            let nonce = format!("nonce-{n:016}");
            assert!(matches!(
                admit(&deps, key, &nonce, 1_700_000_060).await,
                Ok(Some(Ok(())))
            ));
            // Replaying a nonce must not charge the budget (else replays could lock a key out).
            assert!(matches!(
                admit(&deps, key, &nonce, 1_700_000_060).await,
                Ok(None)
            ));
        }
        match admit(&deps, key, "nonce-over-the-budget", 1_700_000_060).await {
            Ok(Some(Err(Error::RateLimited {
                limit: Limit::RequestsPerCaller,
                ..
            }))) => {}
            other => panic!("expected the caller's limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_address_over_its_creation_budget_does_not_use_up_the_relays() {
        let (mut deps, _) = deps(1_700_000_000);
        deps.limits.creations_per_ip = Rate { per_minute: 2 };
        deps.limits.creations_global = Rate { per_minute: 3 };
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 9].into(), [198, 51, 100, 4].into());
        let limited = |result: Result<(), Error>| match result {
            Err(Error::RateLimited { limit, .. }) => Some(limit),
            Ok(()) => None,
            Err(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(limited(take_creation(&deps, Some(a)).await), None);
        assert_eq!(limited(take_creation(&deps, Some(a)).await), None);
        for _ in 0..5 {
            assert_eq!(
                limited(take_creation(&deps, Some(a)).await),
                Some(Limit::CreationsPerIp)
            );
        }
        // The refused creations took nothing from the relay-wide budget: one is left.
        assert_eq!(limited(take_creation(&deps, Some(b)).await), None);
        assert_eq!(
            limited(take_creation(&deps, Some(b)).await),
            Some(Limit::CreationsGlobal)
        );
    }
}
