//! `approvd nas …`: a NAS from the terminal — create an identity, pair phones (QR code + SAS),
//! list devices, request an approval and wait for the verified outcome, cancel, drain the
//! mailbox, check an offline code.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{NasHome, Outcome};
use approvd_proto::context::{LoginContext, LoginKind};
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
        user: String,
        /// How long the QR code stays valid, in seconds (at most 600).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
    /// List paired devices (of one account, or of all).
    Devices {
        /// Only this account's phones.
        #[arg(long)]
        user: Option<String>,
    },
    /// Forget one of an account's phones (it gets no more requests; its codes stop working).
    Remove {
        /// The account.
        #[arg(long)]
        user: String,
        /// The device id `devices` shows (base64url, so it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        device_id: String,
    },
    /// Ask the account's phones to approve a sign-in and wait for the verified answer.
    /// Exit code: 0 approved, 1 denied or reported as fraud, 2 expired or cancelled, 3 error.
    Request {
        /// The account signing in: only its phones are asked.
        #[arg(long)]
        user: String,
        /// Ask only these of the account's phones (device ids; repeatable).
        #[arg(long = "device", allow_hyphen_values = true)]
        devices: Vec<String>,
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
        cid: String,
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
        user: String,
        /// The 6-digit code.
        code: String,
    },
    /// Make a new set of 10 recovery codes for an account (for a lost phone), voiding the old
    /// set. They are shown once; only their hashes are kept.
    RecoveryCodes {
        /// The account.
        #[arg(long)]
        user: String,
    },
    /// Sign in with a recovery code (each works once). Exit codes as for `otp`.
    Recover {
        /// The account.
        #[arg(long)]
        user: String,
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
        command => match NasHome::open(&args.home) {
            Ok(home) => run_with_home(&home, command).await,
            Err(error) => fail(&error),
        },
    }
}

async fn run_with_home(home: &NasHome, command: NasCommand) -> ExitCode {
    let result = async {
        let nas = home.nas()?;
        match command {
            NasCommand::Init { .. } => unreachable!("handled above"),
            NasCommand::Pair { user, ttl } => pair(home, &nas, &user, ttl).await,
            NasCommand::Remove { user, device_id } => {
                let device_id = approvd_proto::DeviceId(approvd_proto::PublicKey::parse(
                    "device_id",
                    &device_id,
                )?);
                if home.remove_device(&user, &device_id)? {
                    println!("removed {device_id} from {user}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("{user} has no device {device_id}");
                    Ok(ExitCode::from(1))
                }
            }
            NasCommand::Devices { user } => {
                let devices: Vec<_> = home
                    .devices()?
                    .into_iter()
                    .filter(|record| user.as_ref().is_none_or(|user| record.account == *user))
                    .collect();
                if devices.is_empty() {
                    println!("no paired devices; run `approvd nas pair --user NAME`");
                }
                for record in devices {
                    let device = &record.device;
                    let mut notes = Vec::new();
                    if record.push_gone {
                        notes.push("push token dead".to_owned());
                    }
                    if let Some(until) = record.muted_until.filter(|until| *until > unix_now()) {
                        notes.push(format!(
                            "muted for {} min",
                            (until - unix_now()).div_ceil(60)
                        ));
                    }
                    println!(
                        "{}  {}  {} ({})  {}",
                        record.account,
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
                service,
                ip,
                user_agent,
                location,
                number_matching,
                passwordless,
                action,
                lifetime,
            } => {
                let settings = home.settings()?;
                let context = LoginContext {
                    user,
                    service,
                    nas_label: settings.label,
                    client_ip: ip,
                    user_agent,
                    location,
                    kind: match (&action, passwordless) {
                        (Some(_), _) => LoginKind::Action,
                        (None, true) => LoginKind::Passwordless,
                        (None, false) => LoginKind::Login,
                    },
                    action,
                    time: unix_now(),
                };
                let number_matching = number_matching || context.requires_number_matching();
                request(home, &nas, &context, &devices, number_matching, lifetime).await
            }
            NasCommand::Cancel { cid } => {
                let cid = approvd_proto::Cid::parse(&cid)?;
                nas.cancel(&cid).await?;
                println!("cancelled {cid}");
                Ok(ExitCode::SUCCESS)
            }
            NasCommand::Mailbox { wait } => {
                let devices: Vec<_> = home
                    .devices()?
                    .into_iter()
                    .map(|record| record.device)
                    .collect();
                let events = nas
                    .drain_mailbox(&devices, Duration::from_secs(wait))
                    .await?;
                home.apply(&events)?;
                if events.is_empty() {
                    println!("mailbox empty");
                }
                for event in events {
                    println!("{event:?}");
                }
                Ok(ExitCode::SUCCESS)
            }
            NasCommand::Otp { user, code } => Ok(report_code(
                home.check_offline_code(&user, code.trim(), unix_now())?,
                "offline code",
            )),
            NasCommand::RecoveryCodes { user } => {
                let codes = home.new_recovery_codes(&user)?;
                println!(
                    "Recovery codes for {user} (each works once; the old set no longer works). \
                     Keep them somewhere safe — they are not shown again:"
                );
                for code in codes {
                    println!("  {code}");
                }
                Ok(ExitCode::SUCCESS)
            }
            NasCommand::Recover { user, code } => Ok(report_code(
                home.use_recovery_code(&user, code.trim(), unix_now())?,
                "recovery code",
            )),
        }
    }
    .await;
    result.unwrap_or_else(|error| fail(&error))
}

/// Print the result of a code check; the exit code says it too.
fn report_code(check: approvd_client::CodeCheck, what: &str) -> ExitCode {
    use approvd_client::CodeCheck;
    match check {
        CodeCheck::Accepted { device_id } => {
            match device_id {
                Some(device_id) => println!("valid {what} from device {device_id}"),
                None => println!("valid {what} (it is used up now)"),
            }
            ExitCode::SUCCESS
        }
        CodeCheck::Rejected { failures } => {
            println!(
                "invalid {what} (wrong, too old, or already used); {failures} wrong in a row — \
                 after {} the account is locked for a while",
                approvd_client::home::FREE_FAILURES
            );
            ExitCode::from(1)
        }
        CodeCheck::LockedOut { until } => {
            println!(
                "locked out after too many wrong codes: try again in {} s (this code was not checked)",
                until.saturating_sub(unix_now())
            );
            ExitCode::from(4)
        }
    }
}

async fn pair(
    home: &NasHome,
    nas: &approvd_client::Nas,
    account: &str,
    ttl: u64,
) -> Result<ExitCode, approvd_client::ClientError> {
    let settings = home.settings()?;
    home.check_room(account)?;
    let uri = nas
        .start_pairing(&settings.label, account, Duration::from_secs(ttl.min(600)))
        .await?;
    let text = uri.to_uri();
    println!(
        "Scan this with the approvd app (valid for {} s):\n{}\n{text}\n",
        ttl.min(600),
        qr(&text)
    );
    let _ = std::io::stdout().flush();
    let verified = loop {
        if uri.expires_at <= unix_now() {
            eprintln!("the pairing code expired before a phone claimed it");
            return Ok(ExitCode::from(2));
        }
        let wait = Duration::from_secs(uri.expires_at.saturating_sub(unix_now()).min(25));
        if let Some(verified) = nas.wait_for_claim(&uri, wait).await? {
            break verified;
        }
    };
    println!(
        "Phone \"{}\" ({}) wants to pair; this NAS has committed to it.",
        verified.device.name, verified.device.platform
    );
    print!("Type the 6-digit security code the phone shows: ");
    let _ = std::io::stdout().flush();
    let mut typed = String::new();
    let _ = std::io::stdin().lock().read_line(&mut typed);
    let (device, code_secret) = match nas.confirm(&verified, typed.trim()).await {
        Ok(paired) => paired,
        Err(approvd_client::ClientError::Verification(reason)) => {
            println!("\n{reason}; start again with a new QR code");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error),
    };
    println!(
        "paired {} ({}) for {account}",
        device.name, device.device_id
    );
    home.add_device(account, device, &code_secret)?;
    if !home.has_recovery_codes(account)? {
        println!(
            "Recovery codes for {account}, for when the phone is lost (each works once; shown \
             only now — `approvd nas recovery-codes --user {account}` makes a new set):"
        );
        for code in home.new_recovery_codes(account)? {
            println!("  {code}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn request(
    home: &NasHome,
    nas: &approvd_client::Nas,
    context: &LoginContext,
    only: &[String],
    number_matching: bool,
    lifetime: u64,
) -> Result<ExitCode, approvd_client::ClientError> {
    let devices: Vec<_> = home
        .account_devices(&context.user)?
        .into_iter()
        .filter(|device| only.is_empty() || only.contains(&device.device_id.to_string()))
        .collect();
    if devices.is_empty() {
        eprintln!(
            "{} has no paired phones{}; run `approvd nas pair --user {}` first",
            context.user,
            if only.is_empty() {
                ""
            } else {
                " with those ids"
            },
            context.user
        );
        return Ok(ExitCode::from(3));
    }
    let sent = nas
        .request_approval(
            &devices,
            context,
            number_matching,
            Duration::from_secs(lifetime.min(120)),
        )
        .await?;
    println!("challenge {} sent", sent.cid);
    for delivery in &sent.report.deliveries {
        let name = devices
            .iter()
            .find(|d| d.device_id == delivery.device_id)
            .map_or("?", |d| d.name.as_str());
        println!("  {name}: {:?}", delivery.delivery);
    }
    if let Some(number) = &sent.number {
        println!("number to type on the phone: {number}");
    }
    let _ = std::io::stdout().flush();
    loop {
        let wait = Duration::from_secs(sent.expires.saturating_sub(unix_now()).clamp(1, 25));
        let Some(outcome) = nas.wait_for_verdict(&sent, &devices, wait).await? else {
            continue;
        };
        let name = |device_id: &approvd_proto::DeviceId| {
            devices
                .iter()
                .find(|d| d.device_id == *device_id)
                .map_or_else(|| device_id.to_string(), |d| d.name.clone())
        };
        return Ok(match outcome {
            Outcome::Approved { device_id } => {
                println!("APPROVED by {} (signature verified)", name(&device_id));
                ExitCode::SUCCESS
            }
            Outcome::Denied { device_id } => {
                println!("DENIED by {}", name(&device_id));
                ExitCode::from(1)
            }
            Outcome::WrongNumber { device_id } => {
                println!(
                    "DENIED: {} approved with the wrong number (count it as a failed sign-in)",
                    name(&device_id)
                );
                ExitCode::from(1)
            }
            Outcome::FraudReported { device_id } => {
                println!(
                    "DENIED and reported as fraud by {}: this sign-in was not the user",
                    name(&device_id)
                );
                ExitCode::from(1)
            }
            Outcome::Expired => {
                println!("EXPIRED: no answer in time");
                ExitCode::from(2)
            }
            Outcome::Cancelled => {
                println!("CANCELLED");
                ExitCode::from(2)
            }
            Outcome::Invalid { reason } => {
                println!("INVALID answer refused: {reason}");
                ExitCode::from(3)
            }
        });
    }
}
