//! `approvd phone …`: a phone from the terminal, one pairing per `--home` directory (so two
//! phones can be simulated side by side) — enroll from a pairing URI, read the inbox with the
//! decrypted context, approve / deny / report fraud, mute, unpair, show an offline code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{ClientError, Phone, PhoneHome};
use approvd_proto::pairing::PairingUri;
use approvd_proto::wire::{PushProvider, PushRegistration};
use approvd_proto::Decision;
use clap::{Args, Subcommand};

use crate::cli::{describe, fail};

/// Act as a phone (the user's authenticator app).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  approvd phone enroll 'approvd://pair?v=1&r=…'\n  approvd phone inbox --wait 30\n  approvd phone approve <cid> --number 427"
)]
pub struct PhoneArgs {
    /// Directory holding this phone's keys for one pairing.
    #[arg(long, global = true, default_value = "approvd-phone")]
    pub home: PathBuf,
    #[command(subcommand)]
    pub command: PhoneCommand,
}

#[derive(Debug, Subcommand)]
pub enum PhoneCommand {
    /// Pair with a NAS from its pairing URI (the text of its QR code): claim, show the security
    /// code, wait for the NAS to confirm.
    Enroll {
        /// The `approvd://pair?...` URI.
        uri: String,
        /// The name the NAS shows for this phone, e.g. "Alice's laptop" (so that an account's
        /// phones can be told apart).
        #[arg(long)]
        name: String,
        /// Platform reported to the NAS.
        #[arg(long, default_value = "cli")]
        platform: String,
        /// Push token (with --push-provider and --push-topic); without it the phone polls.
        #[arg(long, requires_all = ["push_provider", "push_topic"])]
        push_token: Option<String>,
        /// `apns` or `fcm`.
        #[arg(long)]
        push_provider: Option<String>,
        /// APNs bundle id or FCM app id.
        #[arg(long)]
        push_topic: Option<String>,
    },
    /// Show pending sign-in requests (verified and decrypted).
    Inbox {
        /// Seconds to wait for a request.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Approve a request.
    Approve {
        /// The challenge id (from `inbox`; base64url, so it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        cid: String,
        /// The number shown on the login page (number matching).
        #[arg(long)]
        number: Option<String>,
    },
    /// Deny a request.
    Deny {
        /// The challenge id (from `inbox`).
        #[arg(allow_hyphen_values = true)]
        cid: String,
    },
    /// Deny a request and report that the user did not start it.
    Fraud {
        /// The challenge id (from `inbox`).
        #[arg(allow_hyphen_values = true)]
        cid: String,
    },
    /// Stop pushes from this NAS for a while (requests still reach the inbox).
    Mute {
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// Unpair from the NAS (it is told, signed) and forget the keys.
    Unpair,
    /// Show the offline code (for when the relay cannot be reached).
    Otp,
}

pub async fn run(args: PhoneArgs) -> ExitCode {
    let home = PhoneHome::new(&args.home);
    let result = match args.command {
        PhoneCommand::Enroll {
            uri,
            name,
            platform,
            push_token,
            push_provider,
            push_topic,
        } => {
            enroll(
                &home,
                &uri,
                &name,
                &platform,
                push_token,
                push_provider,
                push_topic,
            )
            .await
        }
        PhoneCommand::Inbox { wait } => inbox(&home, wait).await,
        PhoneCommand::Approve { cid, number } => {
            answer(&home, &cid, Decision::Approve, number.as_deref()).await
        }
        PhoneCommand::Deny { cid } => answer(&home, &cid, Decision::Deny, None).await,
        PhoneCommand::Fraud { cid } => answer(&home, &cid, Decision::Fraud, None).await,
        PhoneCommand::Mute { minutes } => {
            async {
                home.phone()?
                    .mute(unix_now() + minutes.clamp(1, 7 * 24 * 60) * 60)
                    .await?;
                println!("muted for {minutes} min");
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
        PhoneCommand::Unpair => {
            async {
                home.phone()?.unpair().await?;
                std::fs::remove_file(args.home.join("phone.json")).map_err(|error| {
                    ClientError::Storage {
                        path: args.home.display().to_string(),
                        message: error.to_string(),
                    }
                })?;
                println!("unpaired; keys deleted");
                Ok(ExitCode::SUCCESS)
            }
            .await
        }
        PhoneCommand::Otp => home.phone().map(|phone| {
            let now = unix_now();
            match phone.offline_code(now) {
                Some(code) => {
                    println!("{code}  (valid about {} s)", 30 - now % 30);
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("no offline code: the NAS has not confirmed this pairing");
                    ExitCode::from(2)
                }
            }
        }),
    };
    result.unwrap_or_else(|error| fail(&error))
}

async fn enroll(
    home: &PhoneHome,
    uri: &str,
    name: &str,
    platform: &str,
    push_token: Option<String>,
    push_provider: Option<String>,
    push_topic: Option<String>,
) -> Result<ExitCode, ClientError> {
    let uri = PairingUri::parse(uri.trim(), unix_now())?;
    if home.exists() {
        // The same NAS name under another key: the NAS was re-keyed (PROTOCOL.md §5.6), and
        // the old pairing is one to delete.
        let old = home.state()?;
        let message = if old.nas_label == uri.label && old.claim.nas_id != uri.nas_id {
            format!(
                "this --home is paired with \"{}\" already, under an older NAS key (the NAS \
                 was probably re-keyed): `approvd phone unpair` deletes the old pairing, then \
                 enroll again; or use another directory",
                old.nas_label
            )
        } else {
            "this --home is paired already; use another directory or `approvd phone unpair`"
                .to_owned()
        };
        return Err(ClientError::Storage {
            path: "phone.json".to_owned(),
            message,
        });
    }
    let push = match (push_token, push_provider.as_deref(), push_topic) {
        (Some(token), Some(provider), Some(topic)) => Some(PushRegistration {
            provider: match provider {
                "apns" => PushProvider::Apns,
                "fcm" => PushProvider::Fcm,
                other => {
                    return Err(approvd_proto::Error::Invalid {
                        field: "push-provider",
                        reason: if other.is_empty() {
                            "empty"
                        } else {
                            "must be apns or fcm"
                        },
                    }
                    .into())
                }
            },
            token,
            topic,
            p256dh: None,
            auth: None,
        }),
        _ => None,
    };
    println!(
        "Pairing with \"{}\" for the account \"{}\".",
        uri.label, uri.account
    );
    let mut phone = Phone::enroll(&uri, name, platform, push).await?;
    home.save(&phone.to_state(&uri.label, false))?;
    println!("Claimed; waiting for the NAS to accept this phone.");
    let abandon = |what: &str| {
        println!("the NAS did not {what} in time; pairing abandoned");
        let _ = std::fs::remove_file(home_file(home));
        Ok(ExitCode::from(2))
    };
    let code = loop {
        let remaining = uri.expires_at.saturating_sub(unix_now());
        if remaining == 0 {
            return abandon("accept");
        }
        let wait = Duration::from_secs(remaining.min(25));
        match phone.wait_for_acceptance(wait).await {
            Ok(Some(code)) => break code,
            Ok(None) => continue,
            Err(error) => {
                let _ = std::fs::remove_file(home_file(home));
                return Err(error);
            }
        }
    };
    println!("Security code: {code}  — type it on the NAS.");
    loop {
        let remaining = uri.expires_at.saturating_sub(unix_now());
        if remaining == 0 {
            return abandon("confirm");
        }
        if phone
            .wait_for_confirmation(Duration::from_secs(remaining.min(25)))
            .await?
        {
            break;
        }
    }
    home.save(&phone.to_state(&uri.label, true))?;
    println!("paired with \"{}\" (NAS signature verified)", uri.label);
    Ok(ExitCode::SUCCESS)
}

fn home_file(home: &PhoneHome) -> PathBuf {
    home.path_for_cli()
}

/// Delete this home's pairing because the NAS retired its key or went unused for a year:
/// tell the NAS (best effort: it may be gone), then remove the keys.
async fn forget(home: &PhoneHome, phone: &Phone, why: &str) -> Result<ExitCode, ClientError> {
    let label = home.state()?.nas_label;
    if let Err(error) = phone.unpair().await {
        eprintln!("warning: could not tell the NAS: {error}");
    }
    let path = home_file(home);
    std::fs::remove_file(&path).map_err(|error| ClientError::Storage {
        path: path.display().to_string(),
        message: error.to_string(),
    })?;
    println!("\"{label}\": {why}\n  this pairing is deleted (keys removed)");
    Ok(ExitCode::SUCCESS)
}

async fn inbox(home: &PhoneHome, wait: u64) -> Result<ExitCode, ClientError> {
    let phone = home.phone()?;
    if phone.unused_for_long(unix_now()) {
        return forget(
            home,
            &phone,
            "sent nothing for over a year, so the pairing has expired",
        )
        .await;
    }
    let received = phone.inbox(Duration::from_secs(wait)).await?;
    if let Some(retirement) = received.iter().find(|received| received.retires_pairing()) {
        let why = format!(
            "retired its key — {}",
            crate::cli::shown(retirement.context.action.as_deref().unwrap_or_default())
        );
        return forget(home, &phone, &why).await;
    }
    home.remember(&phone)?;
    if received.is_empty() {
        println!("no pending requests");
    }
    let held_back = phone.held_back_prompts();
    if held_back > 0 {
        println!(
            "warning: {held_back} more requests held back — this NAS sent more than {} in {} minutes; if you did not start them, `approvd phone mute`",
            approvd_client::MAX_PROMPTS,
            approvd_client::PROMPT_WINDOW / 60
        );
    }
    for challenge in received {
        let entry = &challenge.entry;
        println!(
            "{}  expires in {} s{}\n{}",
            entry.cid,
            entry.expires.saturating_sub(unix_now()),
            if entry.number_matching {
                "  (type the number shown on the login page)"
            } else {
                ""
            },
            describe(&challenge.context)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn answer(
    home: &PhoneHome,
    cid: &str,
    decision: Decision,
    number: Option<&str>,
) -> Result<ExitCode, ClientError> {
    let phone = home.phone()?;
    let cid = approvd_proto::Cid::parse(cid)?;
    let received = phone.inbox(Duration::ZERO).await?;
    let Some(challenge) = received.iter().find(|challenge| challenge.entry.cid == cid) else {
        eprintln!("no pending request {cid} (answered on another device, expired, or cancelled)");
        return Ok(ExitCode::from(2));
    };
    if !challenge.context.is_answerable() {
        eprintln!("{cid} is a notice from the NAS: there is nothing to answer");
        return Ok(ExitCode::from(2));
    }
    if decision == Decision::Approve && challenge.entry.number_matching && number.is_none() {
        eprintln!("this request needs the number shown on the login page: --number NNN");
        return Ok(ExitCode::from(3));
    }
    let verdict = phone.answer(challenge, decision, number);
    home.remember(&phone)?;
    phone.submit(&verdict).await?;
    println!("{} sent", decision.as_str());
    Ok(ExitCode::SUCCESS)
}
