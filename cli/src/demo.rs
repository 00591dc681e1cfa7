//! `approvd demo`: the whole protocol in one process, in a few seconds — a relay on a free
//! loopback port (memory store), a NAS and two phones; pairing with matching security codes; a
//! number-matching sign-in request; one phone approves, the other is dismissed; the NAS verifies
//! the answer; a forged approval is refused; an offline code works once. Exit 0 only if every
//! check held.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{ClientError, Nas, Outcome, Phone};
use approvd_proto::context::{LoginContext, LoginKind};
use approvd_proto::wire::{PushProvider, PushRegistration, SignedVerdict};
use approvd_proto::{Decision, SignedMessage as _};

use approvd_relay::config::{Config, ServeArgs};
use approvd_relay::server;

use crate::cli::describe;

struct Step(u32);

impl Step {
    fn next(&mut self, title: &str) {
        self.0 += 1;
        println!("\n[{}] {title}", self.0);
    }
}

fn check(condition: bool, what: &str) -> Result<(), ClientError> {
    if condition {
        println!("    ✓ {what}");
        Ok(())
    } else {
        Err(ClientError::Verification(format!(
            "demo check failed: {what}"
        )))
    }
}

pub async fn run() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("approvd-demo-{}", std::process::id()));
    let mut values = BTreeMap::new();
    values.insert("bind", "127.0.0.1:0".to_owned());
    values.insert("data_dir", dir.display().to_string());
    let args = ServeArgs {
        config: None,
        values,
    };
    let config = match Config::load(&args, &HashMap::new(), None) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::from(3);
        }
    };
    let started = async {
        let listener = server::bind(&config)?;
        let address = listener.local_addr()?;
        let state = server::build_state(&config, approvd_relay::metrics::Metrics::new()).await?;
        Ok::<_, server::StartError>((listener, address, state))
    }
    .await;
    let (listener, address, state) = match started {
        Ok(started) => started,
        Err(error) => {
            eprintln!("demo: cannot start the relay: {error}");
            return ExitCode::from(3);
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = config.http.clone();
    let server = tokio::spawn(async move {
        server::serve(listener, state, &http, async {
            let _ = stopped.await;
        })
        .await
    });
    let url = format!("http://{address}");
    let result = walk_through(&url).await;
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => {
            println!("\nAll checks passed.");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::from(1)
        }
    }
}

async fn walk_through(url: &str) -> Result<(), ClientError> {
    let mut step = Step(0);
    step.next("Relay");
    println!("    listening on {url} (embedded memory store; pushes are logged, not sent)");

    step.next("NAS identity");
    let nas = Nas::new(url, approvd_proto::generate_signing_key())?;
    println!("    nas_id {}", nas.nas_id());

    let mut phones = Vec::new();
    let mut devices = Vec::new();
    let mut secrets = Vec::new();
    for (name, push) in [
        (
            "Alice's iPhone",
            Some(PushRegistration {
                provider: PushProvider::Apns,
                token: "ab".repeat(32),
                topic: "dev.approvd.demo".to_owned(),
                p256dh: None,
                auth: None,
            }),
        ),
        ("Alice's iPad", None),
    ] {
        step.next(&format!(
            "Pair \"{name}\"{}",
            if push.is_some() {
                " (with push)"
            } else {
                " (no push: it polls its inbox)"
            }
        ));
        let uri = nas
            .start_pairing("home-nas", "alice", Duration::from_secs(120))
            .await?;
        println!("    QR code: {}", uri.to_uri());
        let mut phone = Phone::enroll(&uri, name, "ios", push).await?;
        let verified = nas
            .wait_for_claim(&uri, Duration::from_secs(5))
            .await?
            .ok_or_else(|| ClientError::Verification("no claim arrived".to_owned()))?;
        let phone_code = phone
            .wait_for_acceptance(Duration::from_secs(5))
            .await?
            .ok_or_else(|| ClientError::Verification("the NAS did not accept".to_owned()))?;
        println!(
            "    the NAS committed to this claim; the phone shows {phone_code}, typed on the NAS"
        );
        let (device, code_secret) = nas.confirm(&verified, &phone_code).await?;
        check(
            true,
            "claim MAC and signature verified by the NAS, the phone's code typed and matched",
        )?;
        check(
            phone.wait_for_confirmation(Duration::from_secs(5)).await?,
            "phone verified the NAS's confirmation and opened its offline-code secret",
        )?;
        secrets.push(code_secret);
        phones.push(phone);
        devices.push(device);
    }

    step.next("Sign-in request with number matching");
    let context = LoginContext {
        user: "alice".to_owned(),
        service: "DSM".to_owned(),
        nas_label: "home-nas".to_owned(),
        client_ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("Firefox 140 on Linux".to_owned()),
        location: Some("Berlin, DE".to_owned()),
        kind: LoginKind::Login,
        action: None,
        time: unix_now(),
    };
    let sent = nas
        .request_approval(&devices, &context, true, Duration::from_secs(60))
        .await?;
    let number = sent.number.clone().unwrap_or_default();
    println!(
        "    challenge {}; the login page shows the number {number}",
        sent.cid
    );
    for (device, delivery) in devices.iter().zip(&sent.report.deliveries) {
        println!("    {}: {:?}", device.name, delivery.delivery);
    }

    step.next("Both phones fetch, verify and decrypt the request");
    let mut fetched = Vec::new();
    for (phone, device) in phones.iter().zip(&devices) {
        let mut received = phone.inbox(Duration::from_secs(5)).await?;
        check(
            received.len() == 1,
            &format!(
                "{}: challenge signature verified under the pinned NAS key, context decrypted",
                device.name
            ),
        )?;
        let challenge = received.remove(0);
        println!("{}", describe(&challenge.context));
        fetched.push(challenge);
    }

    step.next("Alice types the number on her iPhone and approves");
    let approval = phones[0].answer(&fetched[0], Decision::Approve, Some(&number));
    phones[0].submit(&approval).await?;
    check(true, "verdict accepted by the relay (first answer wins)")?;

    step.next("The iPad is dismissed");
    check(
        phones[1].inbox(Duration::ZERO).await?.is_empty(),
        "the request left the iPad's inbox",
    )?;
    let late = phones[1]
        .submit(&phones[1].answer(&fetched[1], Decision::Approve, Some(&number)))
        .await;
    check(
        late.as_ref().err().and_then(ClientError::problem_name) == Some("already-decided"),
        "a late answer from the iPad is refused: already decided",
    )?;

    step.next("The NAS verifies the answer itself");
    let outcome = nas
        .wait_for_verdict(&sent, &devices, Duration::from_secs(5))
        .await?;
    check(outcome == Some(Outcome::Approved { device_id: devices[0].device_id }), "APPROVED by Alice's iPhone: signature under the D_sig recorded at pairing, challenge hash and number match")?;

    step.next("A relay cannot approve on its own");
    let relay_key = approvd_proto::generate_signing_key();
    let forged = SignedVerdict {
        sig: approval.verdict.sign(&relay_key),
        verdict: approval.verdict.clone(),
    };
    let judged = nas.judge(&sent, &devices, &forged, unix_now());
    check(
        matches!(judged, Outcome::Invalid { .. }),
        "an approval signed by any other key is INVALID to the NAS",
    )?;

    step.next("Offline code (relay unreachable)");
    let now = unix_now();
    let code = phones[0]
        .offline_code(now)
        .ok_or_else(|| ClientError::Verification("the phone has no code secret".to_owned()))?;
    println!("    the iPhone shows {code}");
    let first = approvd_proto::totp::verify(&secrets[0].0, &code, now, None);
    check(
        first.is_some(),
        "the NAS accepts it (a random secret it sealed to the phone at pairing)",
    )?;
    check(
        approvd_proto::totp::verify(&secrets[0].0, &code, now, first).is_none(),
        "the same code is refused the second time",
    )?;
    Ok(())
}
