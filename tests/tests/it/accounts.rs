//! Phones belong to accounts: a request for alice reaches only alice's phones, bob's offline
//! code never signs alice in, an account has a phone limit, and the NAS state is changed under
//! a lock (two offline-code checks of one code at once: exactly one succeeds).

use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{CodeCheck, NasHome, Outcome};
use approvd_proto::Decision;
use approvd_tests::{context, pair_for, RelayProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

fn home(relay: &RelayProcess, dir: &TempDir, max_phones: usize) -> NasHome {
    NasHome::init_with(&dir.0.join("nas"), &relay.url, "home-nas", max_phones).expect("init")
}

#[tokio::test]
async fn bobs_phone_never_receives_decides_or_signs_in_for_alice() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("accounts");
    let home = home(&relay, &dir, 20);
    let nas = home.nas().expect("nas");
    let (alice_phone, alice_device, alice_secret) = pair_for(&nas, "alice", "Alice's", None).await;
    let (bob_phone, bob_device, bob_secret) = pair_for(&nas, "bob", "Bob's", None).await;
    home.add_device("alice", alice_device.clone(), &alice_secret)
        .expect("recorded");
    home.add_device("bob", bob_device.clone(), &bob_secret)
        .expect("recorded");

    // The request for alice goes to alice's phones only.
    let alice_devices = home.account_devices("alice").expect("devices");
    assert_eq!(alice_devices, std::slice::from_ref(&alice_device));
    let sent = nas
        .request_approval(
            &alice_devices,
            &context("alice"),
            false,
            Duration::from_secs(60),
        )
        .await
        .expect("sent");
    assert_eq!(sent.report.deliveries.len(), 1);
    assert!(bob_phone
        .inbox(Duration::ZERO)
        .await
        .expect("inbox")
        .is_empty());
    // Even a verdict bob's phone made up for it is not alice's approval.
    let received = alice_phone.inbox(WAIT).await.expect("inbox").remove(0);
    let mut forged = bob_phone.answer(&received, Decision::Approve, None);
    forged.verdict.device_id = bob_device.device_id;
    assert!(matches!(
        nas.judge(&sent, &alice_devices, &forged, unix_now()),
        Outcome::Invalid { .. }
    ));

    // Bob's offline code is bob's: it never signs alice in.
    let now = unix_now();
    let bob_code = bob_phone.offline_code(now).expect("code");
    assert_eq!(
        home.check_offline_code("alice", &bob_code, now)
            .expect("checked"),
        CodeCheck::Rejected { failures: 1 }
    );
    assert_eq!(
        home.check_offline_code("bob", &bob_code, now)
            .expect("checked"),
        CodeCheck::Accepted {
            device_id: Some(bob_device.device_id)
        }
    );
    let alice_code = alice_phone.offline_code(now).expect("code");
    assert_eq!(
        home.check_offline_code("alice", &alice_code, now)
            .expect("checked"),
        CodeCheck::Accepted {
            device_id: Some(alice_device.device_id)
        }
    );
    // So do bob's recovery codes.
    let bob_recovery = home.new_recovery_codes("bob").expect("codes");
    assert_eq!(
        home.use_recovery_code("alice", &bob_recovery[0], now)
            .expect("checked"),
        CodeCheck::Rejected { failures: 1 }
    );

    // Removing is per account.
    assert!(!home
        .remove_device("bob", &alice_device.device_id)
        .expect("state"));
    assert!(home
        .remove_device("alice", &alice_device.device_id)
        .expect("state"));
    assert!(home.account_devices("alice").expect("devices").is_empty());
    assert_eq!(home.account_devices("bob").expect("devices").len(), 1);
}

#[tokio::test]
async fn an_account_pairs_at_most_its_limit_of_phones() {
    let relay = RelayProcess::start(&[]);
    let dir = TempDir::new("limit");
    let home = home(&relay, &dir, 1);
    let nas = home.nas().expect("nas");
    let (_, first, first_secret) = pair_for(&nas, "alice", "one", None).await;
    let (_, second, second_secret) = pair_for(&nas, "alice", "two", None).await;
    home.add_device("alice", first, &first_secret)
        .expect("first");
    assert!(home.check_room("alice").is_err());
    let refused = home.add_device("alice", second.clone(), &second_secret);
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("the limit")),
        "{refused:?}"
    );
    home.add_device("bob", second, &second_secret)
        .expect("another account has room");
}

#[test]
fn two_checks_of_one_offline_code_at_once_accept_it_once() {
    let dir = TempDir::new("lock");
    let (home, secret) = home_with_one_phone(&dir);
    let start = 1_800_000_000;
    for round in 0..40u64 {
        let now = start + round * approvd_proto::totp::STEP * 3;
        let code = approvd_proto::totp::code_at(&secret.0, now);
        let accepted = std::thread::scope(|scope| {
            let checks: Vec<_> = (0..2)
                .map(|_| {
                    let home = home.clone();
                    let code = code.clone();
                    scope.spawn(move || {
                        matches!(
                            home.check_offline_code("alice", &code, now)
                                .expect("checked"),
                            CodeCheck::Accepted { .. }
                        )
                    })
                })
                .collect();
            checks
                .into_iter()
                .map(|check| check.join().expect("thread"))
                .filter(|accepted| *accepted)
                .count()
        });
        assert_eq!(accepted, 1, "round {round}: one code, one sign-in");
    }
}

#[test]
fn a_device_list_from_before_accounts_is_refused_with_what_to_do() {
    let dir = TempDir::new("old-state");
    let path = dir.0.join("nas");
    NasHome::init_with(&path, "http://127.0.0.1:9", "nas", 20).expect("init");
    std::fs::write(path.join("devices.json"), "[]").expect("old format");
    let home = NasHome::open(&path).expect("opens");
    let error = home.devices().expect_err("refused").to_string();
    assert!(
        error.contains("without accounts") && error.contains("approvd nas pair --user"),
        "{error}"
    );
}

fn home_with_one_phone(dir: &TempDir) -> (NasHome, approvd_proto::totp::CodeSecret) {
    let home =
        NasHome::init_with(&dir.0.join("nas"), "http://127.0.0.1:9", "nas", 20).expect("init");
    let secret = approvd_proto::totp::CodeSecret::generate();
    let device = approvd_client::PairedDevice {
        device_id: approvd_proto::DeviceId(approvd_proto::PublicKey::from(
            &approvd_proto::generate_signing_key(),
        )),
        sig_key: approvd_proto::PublicKey::from(&approvd_proto::generate_signing_key()),
        seal_key: approvd_proto::context::SealSecret::generate().public_key(),
        name: "phone".to_owned(),
        platform: "ios".to_owned(),
        push_handle: approvd_proto::wire::PushHandle(vec![1]),
        paired_at: 0,
    };
    home.add_device("alice", device, &secret).expect("recorded");
    (home, secret)
}

#[test]
fn guessing_codes_locks_the_account_for_longer_each_time() {
    use approvd_client::home::{FIRST_LOCKOUT, FREE_FAILURES};
    let dir = TempDir::new("guessing");
    let (home, secret) = home_with_one_phone(&dir);
    let now = 1_800_000_000;
    let right = approvd_proto::totp::code_at(&secret.0, now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for failure in 1..=FREE_FAILURES {
        assert_eq!(
            home.check_offline_code("alice", wrong, now)
                .expect("checked"),
            CodeCheck::Rejected { failures: failure }
        );
    }
    // Locked: even the right code is refused, unchecked, until the lockout ends.
    let locked = CodeCheck::LockedOut {
        until: now + FIRST_LOCKOUT,
    };
    assert_eq!(
        home.check_offline_code("alice", &right, now + 1)
            .expect("checked"),
        locked
    );
    // Recovery codes have their own count: wrong offline codes never lock the way back in.
    let recovery = home.new_recovery_codes("alice").expect("codes");
    assert_eq!(
        home.use_recovery_code("alice", &recovery[0], now + 1)
            .expect("checked"),
        CodeCheck::Accepted { device_id: None },
        "recovery codes have a count of their own"
    );
    // A name with no phone and no recovery code is not checked, and nothing is written for
    // it: strangers typing names cannot grow the NAS state (the agent counts them in memory).
    assert_eq!(
        home.check_offline_code("bob", wrong, now).expect("checked"),
        CodeCheck::NoAccount
    );
    assert!(!home.state().expect("state").attempts.contains_key("bob"));
    // After the lockout, one more wrong code locks for twice as long.
    let later = now + FIRST_LOCKOUT;
    assert_eq!(
        home.check_offline_code("alice", wrong, later)
            .expect("checked"),
        CodeCheck::Rejected {
            failures: FREE_FAILURES + 1
        }
    );
    assert_eq!(
        home.check_offline_code("alice", wrong, later + 1)
            .expect("checked"),
        CodeCheck::LockedOut {
            until: later + 2 * FIRST_LOCKOUT
        }
    );
    // A right code after it clears the count.
    let after = later + 2 * FIRST_LOCKOUT;
    let right = approvd_proto::totp::code_at(&secret.0, after);
    assert!(matches!(
        home.check_offline_code("alice", &right, after)
            .expect("checked"),
        CodeCheck::Accepted { .. }
    ));
    assert_eq!(
        home.check_offline_code("alice", wrong, after)
            .expect("checked"),
        CodeCheck::Rejected { failures: 1 }
    );
    // Failures decay: one is forgiven per quiet hour, so a stranger's wrong code a day never
    // keeps the account locked.
    for _ in 2..FREE_FAILURES {
        home.check_offline_code("alice", wrong, after)
            .expect("checked");
    }
    let day = after + 24 * 3600;
    for _ in 0..(FREE_FAILURES - 1) {
        assert!(matches!(
            home.check_offline_code("alice", wrong, day)
                .expect("checked"),
            CodeCheck::Rejected { .. }
        ));
    }
    let right = approvd_proto::totp::code_at(&secret.0, day + 30);
    assert!(matches!(
        home.check_offline_code("alice", &right, day + 30)
            .expect("checked"),
        CodeCheck::Accepted { .. }
    ));
}

#[test]
fn recovery_codes_work_once_and_a_new_set_voids_the_old() {
    let dir = TempDir::new("recovery");
    let (home, _) = home_with_one_phone(&dir);
    let now = 1_800_000_000;
    assert!(!home.has_recovery_codes("alice").expect("state"));
    let codes = home.new_recovery_codes("alice").expect("codes");
    assert_eq!(codes.len(), approvd_client::home::RECOVERY_CODES);
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
    assert!(codes
        .iter()
        .all(|code| code.len() == 11 && code.as_bytes()[5] == b'-'));
    // Only hashes are stored.
    let stored = std::fs::read_to_string(dir.0.join("nas/devices.json")).expect("state");
    assert!(codes.iter().all(|code| !stored.contains(code.as_str())));
    // Each works once (typed with other case and spacing too).
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(
        home.use_recovery_code("alice", &typed, now)
            .expect("checked"),
        CodeCheck::Accepted { device_id: None }
    );
    assert_eq!(
        home.use_recovery_code("alice", &codes[0], now)
            .expect("checked"),
        CodeCheck::Rejected { failures: 1 }
    );
    // A new set voids the old one.
    let fresh = home.new_recovery_codes("alice").expect("codes");
    assert!(matches!(
        home.use_recovery_code("alice", &codes[1], now)
            .expect("checked"),
        CodeCheck::Rejected { .. }
    ));
    assert_eq!(
        home.use_recovery_code("alice", &fresh[1], now)
            .expect("checked"),
        CodeCheck::Accepted { device_id: None }
    );
}
