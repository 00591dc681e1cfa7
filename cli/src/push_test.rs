//! `approvd push-test`: send one test push to a raw device token (or a browser's Web Push
//! subscription) through the push credentials
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
    /// Web Push: give the browser's subscription with --subscription.
    Webpush,
}

/// Send one test push to a device token through the configured credentials.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 delivered, 1 refused (gone or failed), 2 configuration error.\n\n\
Examples:\n  approvd push-test --provider fcm --topic com.example.approve --token dQw4... --config /etc/approvd/relay.toml\n  \
approvd push-test --provider apns --topic com.example.approve --token 00fe... --apns-key-file AuthKey.p8 --apns-key-id K --apns-team-id T --apns-topics com.example.approve\n  \
approvd push-test --provider webpush --subscription \"$(cat subscription.json)\" --webpush-vapid-key-file vapid.pem --webpush-subject mailto:ops@example.com"
)]
pub struct PushTestArgs {
    /// The push service of the token.
    #[arg(long, value_enum)]
    pub provider: Provider,
    /// The app: the APNs topic (bundle id) or the FCM app id, as the phone registers it (not
    /// for webpush: the relay's own VAPID key is the topic).
    #[arg(long, required_if_eq_any([("provider", "apns"), ("provider", "fcm")]))]
    pub topic: Option<String>,
    /// The device's push token (apns, fcm).
    #[arg(long, required_if_eq_any([("provider", "apns"), ("provider", "fcm")]))]
    pub token: Option<String>,
    /// For webpush: the browser's PushSubscription as JSON
    /// (`{"endpoint": …, "keys": {"p256dh": …, "auth": …}}`, what `JSON.stringify` prints).
    #[arg(long, required_if_eq("provider", "webpush"), value_name = "JSON")]
    pub subscription: Option<String>,
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
    let registration = match registration(&args, &config) {
        Ok(registration) => registration,
        Err(message) => {
            eprintln!("approvd push-test: {message}");
            return ExitCode::from(2);
        }
    };
    let topic = registration.topic.clone();
    let Some((sender, credential)) = routes.sender(&registration) else {
        eprintln!(
            "approvd push-test: no configured credential serves {} topic `{topic}`",
            sender_name(args.provider),
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
        topic
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
        Provider::Webpush => "Web Push",
    }
}

/// The registration to push to: a token and topic, or a browser's subscription under the
/// relay's own VAPID key.
fn registration(args: &PushTestArgs, config: &Config) -> Result<PushRegistration, String> {
    let native = |provider| PushRegistration {
        provider,
        token: args.token.as_deref().unwrap_or_default().trim().to_owned(),
        topic: args.topic.clone().unwrap_or_default(),
        p256dh: None,
        auth: None,
    };
    match args.provider {
        Provider::Apns => Ok(native(PushProvider::Apns)),
        Provider::Fcm => Ok(native(PushProvider::Fcm)),
        Provider::Webpush => {
            let identity = approvd_relay::server::webpush_identity(&config.push)
                .map_err(|error| error.to_string())?
                .ok_or("Web Push needs --webpush-vapid-key-file and --webpush-subject")?;
            let text = args.subscription.as_deref().unwrap_or_default();
            let subscription: serde_json::Value = serde_json::from_str(text)
                .map_err(|error| format!("--subscription is not JSON: {error}"))?;
            let field = |pointer: &str| {
                subscription
                    .pointer(pointer)
                    .and_then(|value| value.as_str())
                    .map(str::to_owned)
                    .ok_or(format!("--subscription has no `{pointer}`"))
            };
            Ok(PushRegistration {
                provider: PushProvider::Webpush,
                token: field("/endpoint")?,
                topic: identity.public_key,
                p256dh: Some(field("/keys/p256dh")?),
                auth: Some(field("/keys/auth")?),
            })
        }
    }
}

fn format_duration(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}
