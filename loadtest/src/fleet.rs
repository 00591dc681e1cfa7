//! The simulated users: NAS identities and the phones paired to them through the relay's real
//! pairing flow (slot, claim, acceptance, code, confirmation — every check the SDKs make).

use std::sync::Arc;
use std::time::Duration;

use approvd_client::{Nas, PairedDevice, Phone};
use approvd_proto::wire::{PushProvider, PushRegistration};

/// One phone paired to one NAS.
#[derive(Debug, Clone)]
pub struct Pair {
    pub nas: Nas,
    pub device: PairedDevice,
    pub phone: Arc<Phone>,
    /// The FCM token the phone registered (push runs only).
    pub token: Option<String>,
}

/// What to pair.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Relay base URLs: NASes use the first, phones the second when given (replicas).
    pub relays: Vec<String>,
    pub nases: usize,
    pub phones_per_nas: usize,
    /// Register FCM tokens (for the app [`crate::fcm::APP`]).
    pub push: bool,
}

/// Pair `spec.nases × spec.phones_per_nas` phones, `parallel` pairings at a time; `done` is
/// called after each.
pub async fn pair_all(
    spec: &FleetSpec,
    parallel: usize,
    done: impl Fn() + Send + Sync + 'static,
) -> anyhow::Result<Vec<Pair>> {
    let nas_relay = spec.relays[0].clone();
    let phone_relay = spec.relays.get(1).unwrap_or(&spec.relays[0]).clone();
    let nases: Vec<Nas> = (0..spec.nases)
        .map(|_| Nas::new(&nas_relay, approvd_proto::generate_signing_key()))
        .collect::<Result<_, _>>()?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let done = Arc::new(done);
    let mut tasks = Vec::new();
    for (n, nas) in nases.iter().enumerate() {
        for p in 0..spec.phones_per_nas {
            let nas = nas.clone();
            let semaphore = Arc::clone(&semaphore);
            let done = Arc::clone(&done);
            let phone_relay = phone_relay.clone();
            let token = spec
                .push
                .then(|| format!("loadtest-{n}-{p}-{}", random_hex()));
            tasks.push(tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await?;
                let pair = pair_one(nas, &format!("phone {n}.{p}"), token, &phone_relay).await;
                done();
                pair
            }));
        }
    }
    let mut pairs = Vec::with_capacity(tasks.len());
    for task in tasks {
        pairs.push(task.await??);
    }
    Ok(pairs)
}

fn random_hex() -> String {
    hex(&approvd_proto::random_bytes::<8>())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn pair_one(
    nas: Nas,
    name: &str,
    token: Option<String>,
    phone_relay: &str,
) -> anyhow::Result<Pair> {
    let wait = Duration::from_secs(10);
    let uri = nas
        .start_pairing("loadtest", "loadtest-user", Duration::from_secs(120))
        .await?;
    let push = token.clone().map(|token| PushRegistration {
        provider: PushProvider::Fcm,
        token,
        topic: crate::fcm::APP.to_owned(),
        p256dh: None,
        auth: None,
    });
    let mut phone = Phone::enroll(&uri, name, "android", push).await?;
    let verified = nas
        .wait_for_claim(&uri, wait)
        .await?
        .ok_or_else(|| anyhow::anyhow!("pairing: the claim did not arrive"))?;
    let code = phone
        .wait_for_acceptance(wait)
        .await?
        .ok_or_else(|| anyhow::anyhow!("pairing: the acceptance did not arrive"))?;
    let (device, _code_secret) = nas.confirm(&verified, &code).await?;
    if !phone.wait_for_confirmation(wait).await? {
        anyhow::bail!("pairing: the confirmation did not arrive");
    }
    if phone.client().base_url() != phone_relay.trim_end_matches('/') {
        // The phone talks to another replica than the NAS from now on.
        let mut state = phone.to_state("loadtest", true);
        state.relay = phone_relay.to_owned();
        phone = Phone::from_state(&state)?;
    }
    phone.set_prompt_limit(10_000);
    Ok(Pair {
        nas,
        device,
        phone: Arc::new(phone),
        token,
    })
}
