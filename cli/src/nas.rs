//! `approvd nas …`: a NAS from the terminal — create an identity, pair phones (QR code + SAS),
//! list devices, request an approval and wait for the verified outcome, cancel, drain the
//! mailbox, check an offline code. Every action is the agent's own use case
//! (`approvd_agent::service`); this module owns only the terminal: flags, text and exit codes.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use approvd_agent::api::{
    AccountName, ApprovalRequest, CodeKind, CodeResult, PairingRequest, PairingState,
    RequestStatus, MAX_WAIT_SECS,
};
use approvd_agent::service::{Error, Keep, Service};
use approvd_client::transport::unix_now;
use approvd_client::NasHome;
use approvd_proto::context::LoginKind;
use clap::{Args, Subcommand};

use crate::cli::{fail, qr};

/// Act as a NAS (a login server asking for approvals).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  approvd nas init --relay http://127.0.0.1:8080 --label home-nas\n  approvd nas pair --user alice\n  approvd nas request --user alice --ip 203.0.113.7\n\nEvery phone belongs to one account: requests and offline codes of `--user alice` reach only alice's phones.\nFor a login system, run `approvd agent` instead: it keeps the mailbox applied and serves the same actions as a local API. Both take the same lock on the NAS state, so they can run side by side."
)]
pub struct NasArgs {
    /// Directory holding this NAS's key and device list.
    #[arg(long, global = true, default_value = "approvd-nas")]
    pub home: PathBuf,
    #[command(subcommand)]
    pub command: NasCommand,
}

#[derive(Debug, Subcommand)]
pub enum NasCommand {
    /// Create the NAS identity (an Ed25519 key, saved 0600) and remember the relay.
    Init {
        /// The relay's base URL.
        #[arg(long)]
        relay: String,
        /// The name phones show for this NAS.
        #[arg(long, default_value = "approvd NAS")]
        label: String,
        /// Most phones one account may pair.
        #[arg(long, default_value_t = approvd_client::home::DEFAULT_MAX_PHONES)]
        max_phones: usize,
    },
    /// Pair a phone for an account: show a QR code, wait for the phone's claim, commit to it,
    /// then type the 6-digit code the phone shows (read from standard input) to confirm.
    Pair {
        /// The account whose sign-ins this phone will approve.
        #[arg(long)]
        user: AccountName,
        /// How long the QR code stays valid, in seconds (at most 600).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
    /// List paired devices (of one account, or of all).
    Devices {
        /// Only this account's phones.
        #[arg(long)]
        user: Option<AccountName>,
    },
    /// Forget one of an account's phones (it gets no more requests; its codes stop working).
    Remove {
        /// The account.
        #[arg(long)]
        user: AccountName,
        /// The device id `devices` shows (base64url, so it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        device_id: approvd_proto::DeviceId,
    },
    /// Show or change an account's approval policy.
    Policy {
        /// The account.
        #[arg(long)]
        user: AccountName,
        /// Count an approval only when the phone says the user unlocked its approval key with
        /// biometrics or a passcode (`user_verified`); other approvals are refused.
        #[arg(long, value_name = "true|false")]
        require_user_verification: Option<bool>,
    },
    /// Retire this NAS's key for good (e.g. after a backup holding it leaked): every paired
    /// phone is told, deletes its pairing and confirms; then the key is set aside
    /// (`nas.key.retired-<time>`) and every pairing and code forgotten. Run `approvd nas init`
    /// afterwards for a new key and pair the phones again. Phones not reached keep a pairing
    /// that is never used again, and expire it after a year without a request.
    Retire {
        /// Confirm that the key and every pairing are to be retired.
        #[arg(long)]
        yes: bool,
        /// What the phones show (why the pairing ends).
        #[arg(
            long,
            default_value = "This NAS has retired its key: pair this phone again if you still use it."
        )]
        reason: String,
        /// How long to wait for the phones' confirmations, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Ask the account's phones to approve a sign-in and wait for the verified answer.
    /// Exit code: 0 approved, 1 denied or reported as fraud, 2 expired or cancelled, 3 error.
    Request {
        /// The account signing in: only its phones are asked.
        #[arg(long)]
        user: AccountName,
        /// Ask only these of the account's phones (device ids; repeatable).
        #[arg(long = "device", allow_hyphen_values = true)]
        devices: Vec<approvd_proto::DeviceId>,
        /// The service signed in to.
        #[arg(long, default_value = "DSM")]
        service: String,
        /// The client's IP address.
        #[arg(long)]
        ip: Option<String>,
        /// The client's user agent.
        #[arg(long)]
        user_agent: Option<String>,
        /// A coarse location, e.g. "Berlin, DE".
        #[arg(long)]
        location: Option<String>,
        /// Show a 3-digit number that the user must type on the phone. Always on for sign-ins
        /// (PROTOCOL.md §3.4); this flag adds it to an `--action` request.
        #[arg(long)]
        number_matching: bool,
        /// A passwordless sign-in (the approval is the only factor).
        #[arg(long, conflicts_with = "action")]
        passwordless: bool,
        /// Not a sign-in but an action to approve, shown verbatim on the phone, e.g.
        /// "Delete the shared folder photos".
        #[arg(long)]
        action: Option<String>,
        /// Seconds the phone has to answer (at most 120).
        #[arg(long, default_value_t = 60)]
        lifetime: u64,
    },
    /// Cancel a pending request.
    Cancel {
        /// The challenge id printed by `request` (base64url, so it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        cid: approvd_proto::Cid,
    },
    /// Fetch and apply mailbox notices (new push handles, dead tokens, unpairs, mutes).
    Mailbox {
        /// Seconds to wait for a notice.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Check an offline code shown by one of the account's phones (`approvd phone otp`).
    /// Exit code 0 if valid, 1 if not, 4 while the account is locked out after too many
    /// wrong codes.
    Otp {
        /// The account signing in: only its phones' codes count.
        #[arg(long)]
        user: AccountName,
        /// The 6-digit code.
        code: String,
    },
    /// Make a new set of 10 recovery codes for an account (for a lost phone), voiding the old
    /// set. They are shown once; only their hashes are kept.
    RecoveryCodes {
        /// The account.
        #[arg(long)]
        user: AccountName,
    },
    /// Sign in with a recovery code (each works once). Exit codes as for `otp`.
    Recover {
        /// The account.
        #[arg(long)]
        user: AccountName,
        /// The recovery code, e.g. `abcde-fghjk`.
        code: String,
    },
}

pub async fn run(args: NasArgs) -> ExitCode {
    match args.command {
        NasCommand::Init {
            relay,
            label,
            max_phones,
        } => match NasHome::init_with(&args.home, &relay, &label, max_phones) {
            Ok(home) => {
                let nas_id = home
                    .nas()
                    .map(|nas| nas.nas_id().to_string())
                    .unwrap_or_default();
                println!(
                    "NAS identity created in {}\n  nas_id: {nas_id}\n  relay:  {relay}",
                    args.home.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        command => {
            // A running agent holds the key in memory and would keep signing with it: retiring
            // takes the agent's instance lock, so it is refused while an agent serves the home.
            let _instance = match &command {
                NasCommand::Retire { yes: true, .. } => {
                    match approvd_agent::hold_instance_lock(&args.home) {
                        Ok(lock) => Some(lock),
                        Err(error) => {
                            eprintln!("error: {error}");
                            return ExitCode::from(3);
                        }
                    }
                }
                _ => None,
            };
            match Service::open(&args.home, Keep::InMemory) {
                Ok(service) => run_with(&service, command)
                    .await
                    .unwrap_or_else(|error| failed(&error)),
                Err(error) => failed(&error),
            }
        }
    }
}

/// Print a use case's error the way every subcommand does and return exit code 3.
fn failed(error: &Error) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(3)
}

async fn run_with(service: &Arc<Service>, command: NasCommand) -> Result<ExitCode, Error> {
    match command {
        NasCommand::Init { .. } => unreachable!("handled by run"),
        NasCommand::Pair { user, ttl } => pair(service, user, ttl).await,
        NasCommand::Policy {
            user,
            require_user_verification,
        } => {
            let policy = match require_user_verification {
                Some(required) => {
                    let policy = approvd_agent::api::AccountPolicy {
                        require_user_verification: required,
                    };
                    service.set_policy(&user, &policy).await?
                }
                None => service.policy(&user).await?,
            };
            println!(
                "{user}: approvals {} user verification on the phone",
                if policy.require_user_verification {
                    "require"
                } else {
                    "do not require"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Retire { yes, reason, wait } => {
            if !yes {
                eprintln!(
                    "this retires the NAS key and every pairing for good; run again with --yes"
                );
                return Ok(ExitCode::from(2));
            }
            let retired = service.retire(&reason, Duration::from_secs(wait)).await?;
            println!(
                "NAS key retired: {} of {} phones confirmed they deleted the pairing ({} told)\n  \
                 the old key is now {}\n  run `approvd nas init` for a new key, then pair again",
                retired.confirmed,
                retired.phones,
                retired.told,
                retired.retired_key.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Remove { user, device_id } => {
            match service.remove_device(&user, &device_id).await {
                Ok(()) => {
                    println!("removed {device_id} from {user}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::NotFound { .. }) => {
                    eprintln!("{user} has no device {device_id}");
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error),
            }
        }
        NasCommand::Devices { user } => {
            let devices: Vec<_> = service
                .all_devices()
                .await?
                .into_iter()
                .filter(|(account, _)| user.as_ref().is_none_or(|user| account == user.as_str()))
                .collect();
            if devices.is_empty() {
                println!("no paired devices; run `approvd nas pair --user NAME`");
            }
            for (account, device) in devices {
                let mut notes = Vec::new();
                if device.push_gone {
                    notes.push("push token dead".to_owned());
                }
                if let Some(until) = device.muted_until.filter(|until| *until > unix_now()) {
                    notes.push(format!(
                        "muted for {} min",
                        (until - unix_now()).div_ceil(60)
                    ));
                }
                println!(
                    "{account}  {}  {} ({})  {}",
                    device.device_id,
                    device.name,
                    device.platform,
                    notes.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Request {
            user,
            devices,
            service: service_name,
            ip,
            user_agent,
            location,
            number_matching,
            passwordless,
            action,
            lifetime,
        } => {
            let request = ApprovalRequest {
                service: service_name,
                client_ip: ip,
                user_agent,
                location,
                kind: Some(match (&action, passwordless) {
                    (Some(_), _) => LoginKind::Action,
                    (None, true) => LoginKind::Passwordless,
                    (None, false) => LoginKind::Login,
                }),
                action,
                number_matching,
                lifetime_secs: lifetime,
                devices,
                ..ApprovalRequest::sign_in(user)
            };
            request_approval(service, &request).await
        }
        NasCommand::Cancel { cid } => {
            service.nas().cancel(&cid).await?;
            println!("cancelled {cid}");
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Mailbox { wait } => {
            let events = service.drain_mailbox(Duration::from_secs(wait)).await?;
            if events.is_empty() {
                println!("mailbox empty");
            }
            for event in events {
                println!("{event:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Otp { user, code } => Ok(report_code(
            service.check_code(&user, CodeKind::Offline, &code).await?,
            "offline code",
        )),
        NasCommand::RecoveryCodes { user } => {
            let codes = service.new_recovery_codes(&user).await?;
            println!(
                "Recovery codes for {user} (each works once; the old set no longer works). \
                 Keep them somewhere safe — they are not shown again:"
            );
            for code in codes.recovery_codes {
                println!("  {code}");
            }
            Ok(ExitCode::SUCCESS)
        }
        NasCommand::Recover { user, code } => Ok(report_code(
            service.check_code(&user, CodeKind::Recovery, &code).await?,
            "recovery code",
        )),
    }
}

/// Print the result of a code check; the exit code says it too.
fn report_code(check: CodeResult, what: &str) -> ExitCode {
    match check {
        CodeResult::Accepted { device_id } => {
            match device_id {
                Some(device_id) => println!("valid {what} from device {device_id}"),
                None => println!("valid {what} (it is used up now)"),
            }
            ExitCode::SUCCESS
        }
        CodeResult::Rejected { failures } => {
            println!(
                "invalid {what} (wrong, too old, or already used); {failures} wrong in a row — \
                 after {} the account is locked for a while",
                approvd_client::home::FREE_FAILURES
            );
            ExitCode::from(1)
        }
        CodeResult::LockedOut { locked_until } => {
            println!(
                "locked out after too many wrong codes: try again in {} s (this code was not checked)",
                locked_until.saturating_sub(unix_now())
            );
            ExitCode::from(4)
        }
    }
}

async fn pair(service: &Arc<Service>, account: AccountName, ttl: u64) -> Result<ExitCode, Error> {
    // The terminal tool of the home's owner, who can read every secret in it anyway: no
    // phone's approval is asked here (the agent's API asks one, N-8).
    let request = PairingRequest {
        user: account.clone(),
        ttl_secs: ttl,
        approval: None,
        recovery_code: None,
    };
    let started = service.start_pairing(&request).await?;
    println!(
        "Scan this with the approvd app (valid for {} s):\n{}\n{}\n",
        request.ttl().as_secs(),
        qr(&started.uri),
        started.uri
    );
    let _ = std::io::stdout().flush();
    let claimed = loop {
        let status = service
            .wait_for_pairing(&started.pairing_id, Duration::from_secs(MAX_WAIT_SECS))
            .await?;
        match status.state {
            PairingState::Waiting => continue,
            PairingState::Claimed {
                device_name,
                platform,
            } => break (device_name, platform),
            PairingState::Expired => {
                eprintln!("the pairing code expired before a phone claimed it");
                return Ok(ExitCode::from(2));
            }
            PairingState::Failed { reason } => {
                eprintln!("pairing failed: {reason}");
                return Ok(ExitCode::from(1));
            }
            PairingState::Paired { .. } => {
                eprintln!("the pairing was confirmed elsewhere");
                return Ok(ExitCode::SUCCESS);
            }
        }
    };
    println!(
        "Phone \"{}\" ({}) wants to pair; this NAS has committed to it.",
        claimed.0, claimed.1
    );
    print!("Type the 6-digit security code the phone shows: ");
    let _ = std::io::stdout().flush();
    let mut typed = String::new();
    let _ = std::io::stdin().lock().read_line(&mut typed);
    let confirmed = match service.confirm_pairing(&started.pairing_id, &typed).await {
        Ok(confirmed) => confirmed,
        Err(Error::WrongCode(reason)) => {
            println!("\n{reason}; start again with a new QR code");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error),
    };
    if let PairingState::Paired {
        device_id,
        device_name,
    } = &confirmed.pairing.state
    {
        println!("paired {device_name} ({device_id}) for {account}");
    }
    if let Some(codes) = confirmed.recovery_codes {
        println!(
            "Recovery codes for {account}, for when the phone is lost (each works once; shown \
             only now — `approvd nas recovery-codes --user {account}` makes a new set):"
        );
        for code in codes {
            println!("  {code}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn request_approval(
    service: &Arc<Service>,
    request: &ApprovalRequest,
) -> Result<ExitCode, Error> {
    let created = match service.create_request(request).await {
        Ok(created) => created,
        Err(Error::NoDevices(user)) => {
            eprintln!(
                "{user} has no paired phones{}; run `approvd nas pair --user {user}` first",
                if request.devices.is_empty() {
                    ""
                } else {
                    " with those ids"
                },
            );
            return Ok(ExitCode::from(3));
        }
        Err(error) => return Err(error),
    };
    let devices = service.devices(&request.user).await?.devices;
    let name = |device_id: &approvd_proto::DeviceId| {
        devices
            .iter()
            .find(|device| device.device_id == *device_id)
            .map_or_else(|| device_id.to_string(), |device| device.name.clone())
    };
    println!("challenge {} sent", created.request_id);
    for delivery in &created.deliveries {
        println!("  {}: {:?}", name(&delivery.device_id), delivery.delivery);
    }
    if let Some(number) = &created.number {
        println!("number to type on the phone: {number}");
    }
    let _ = std::io::stdout().flush();
    loop {
        let wait = Duration::from_secs(
            created
                .expires
                .saturating_sub(unix_now())
                .clamp(1, MAX_WAIT_SECS),
        );
        let status = service.request_status(&created.request_id, wait).await?;
        return Ok(match status {
            RequestStatus::Pending => continue,
            RequestStatus::Approved(decider) => {
                println!(
                    "APPROVED by {} (signature verified)",
                    name(&decider.device_id)
                );
                ExitCode::SUCCESS
            }
            RequestStatus::Denied(decider) => {
                println!("DENIED by {}", name(&decider.device_id));
                ExitCode::from(1)
            }
            RequestStatus::WrongNumber(decider) => {
                println!(
                    "DENIED: {} approved with the wrong number (count it as a failed sign-in)",
                    name(&decider.device_id)
                );
                ExitCode::from(1)
            }
            RequestStatus::Fraud(decider) => {
                println!(
                    "DENIED and reported as fraud by {}: this sign-in was not the user",
                    name(&decider.device_id)
                );
                ExitCode::from(1)
            }
            RequestStatus::Expired => {
                println!("EXPIRED: no answer in time");
                ExitCode::from(2)
            }
            RequestStatus::Cancelled => {
                println!("CANCELLED");
                ExitCode::from(2)
            }
            RequestStatus::Invalid { reason } => {
                println!("INVALID answer refused: {reason}");
                ExitCode::from(3)
            }
        });
    }
}
