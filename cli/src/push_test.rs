//! `approvd push-test`: send one test push to a raw device token through the push credentials
//! the relay is configured with (the same flags, environment and config file as `serve`), and
//! print which credential served it, the classified result and the time it took — the first
//! check after configuring credentials.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use approvd_proto::wire::{PushProvider, PushRegistration};
use approvd_relay::config::{Config, ServeArgs};
use approvd_relay::push::{PushKind, PushMessage, PushResult};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Provider {
    Apns,
    Fcm,
}

/// Send one test push to a device token through the configured credentials.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 delivered, 1 refused (gone or failed), 2 configuration error.\n\n\
Examples:\n  approvd push-test --provider fcm --topic com.example.approve --token dQw4... --config /etc/approvd/relay.toml\n  \
approvd push-test --provider apns --topic com.example.approve --token 00fe... --apns-key-file AuthKey.p8 --apns-key-id K --apns-team-id T --apns-topics com.example.approve"
)]
pub struct PushTestArgs {
    /// The push service of the token.
    #[arg(long, value_enum)]
    pub provider: Provider,
    /// The app: the APNs topic (bundle id) or the FCM app id, as the phone registers it.
    #[arg(long)]
    pub topic: String,
    /// The device's push token.
    #[arg(long)]
    pub token: String,
    /// Send a silent dismissal instead of a visible alert.
    #[arg(long)]
    pub dismiss: bool,
    /// The relay's configuration (every `approvd serve` option is accepted).
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(args: PushTestArgs) -> ExitCode {
    let config = match Config::from_process(&args.serve) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("approvd push-test: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let metrics = approvd_relay::metrics::Metrics::new();
    let routes = match approvd_relay::server::push_routes(&config.push, &metrics) {
        Ok(routes) => routes,
        Err(error) => {
            eprintln!("approvd push-test: {error}");
            return ExitCode::from(2);
        }
    };
    let registration = PushRegistration {
        provider: match args.provider {
            Provider::Apns => PushProvider::Apns,
            Provider::Fcm => PushProvider::Fcm,
        },
        token: args.token.trim().to_owned(),
        topic: args.topic.clone(),
        p256dh: None,
        auth: None,
    };
    let Some((sender, credential)) = routes.sender(&registration) else {
        eprintln!(
            "approvd push-test: no configured credential serves {} topic `{}`",
            sender_name(args.provider),
            args.topic
        );
        return ExitCode::from(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let message = PushMessage {
        cid: approvd_proto::Cid::random(),
        expires: now + 60,
        kind: if args.dismiss {
            PushKind::Dismiss
        } else {
            PushKind::Alert
        },
    };
    println!(
        "sending a test {} to {} topic `{}` through credential `{credential}`…",
        if args.dismiss { "dismissal" } else { "alert" },
        sender.name(),
        args.topic
    );
    let started = Instant::now();
    let result = sender.send(&registration, &message).await;
    let took = format_duration(started.elapsed());
    match result {
        PushResult::Delivered => {
            println!(
                "delivered in {took} (the provider accepted it; cid {})",
                message.cid
            );
            ExitCode::SUCCESS
        }
        PushResult::Logged => {
            println!(
                "logged only, in {took}: no push credentials are configured, nothing was sent"
            );
            ExitCode::from(2)
        }
        PushResult::Gone => {
            println!("gone, in {took}: the provider says this token is dead (the app was uninstalled or the token is for another app)");
            ExitCode::from(1)
        }
        PushResult::Failed { reason, alarm } => {
            let kind = if alarm {
                "refused for the credentials or topic (fix the configuration)"
            } else {
                "failed"
            };
            println!("{kind}, in {took}: {reason}");
            ExitCode::from(if alarm { 2 } else { 1 })
        }
    }
}

fn sender_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Apns => "APNs",
        Provider::Fcm => "FCM",
    }
}

fn format_duration(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}
