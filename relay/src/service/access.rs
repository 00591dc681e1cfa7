//! Request admission around the signature check: the per-IP budget of failed authentications,
//! the nonce replay cache, and the per-caller request budget. The signature itself is checked by
//! `http::auth` (it needs the HTTP message); these are the parts that need state.

use std::net::IpAddr;
use std::time::Duration;

use approvd_proto::ids::PublicKey;

use super::{Deps, Error};
use crate::store::{Bucket, Nonce};

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

/// Remember a request nonce of `key` until a signature expiring at `expires` (unix s) could no
/// longer pass the time checks anyway. `false`: the nonce was used before (a replay).
pub async fn first_use(
    deps: &Deps,
    key: PublicKey,
    nonce: &str,
    expires: u64,
) -> Result<bool, Error> {
    let now = deps.clock.now();
    let ttl = expires.saturating_sub(now) + deps.limits.clock_skew_secs + 1;
    let nonce = Nonce {
        key,
        nonce: nonce.to_owned(),
    };
    Ok(deps
        .store
        .remember_nonce(&nonce, Duration::from_secs(ttl))
        .await?)
}

/// Count one pairing slot or challenge created from `ip` (when known) and on the relay as a
/// whole: per-key budgets alone cost an attacker nothing, who can make a key per request.
pub async fn take_creation(deps: &Deps, ip: Option<IpAddr>) -> Result<(), Error> {
    if let Some(ip) = ip {
        deps.take(&Bucket::CreationsFrom(ip)).await?;
    }
    deps.take(&Bucket::Creations).await
}

/// Count one authenticated request against the caller's budget.
pub async fn take_request(deps: &Deps, key: PublicKey) -> Result<(), Error> {
    deps.take(&Bucket::Caller(key)).await
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
        assert!(first_use(&deps, key, nonce, 1_700_000_060)
            .await
            .expect("store"));
        assert!(!first_use(&deps, key, nonce, 1_700_000_060)
            .await
            .expect("store"));
        assert!(first_use(&deps, other, nonce, 1_700_000_060)
            .await
            .expect("store"));
    }
}
