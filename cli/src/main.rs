//! The `approvd` command: parse the command line, set up logging, hand off to a library —
//! `approvd-relay` (`serve`), `approvd-agent` (`agent`, `pam`) — or to the client subcommands
//! this binary owns: `nas …` (on the agent's service) and `phone …` (the SDK driven from a
//! terminal, state in a `--home` directory) and `demo` (a whole flow in one process). Owns
//! argument definitions, terminal output and exit codes.

mod cli;
mod demo;
mod healthcheck;
mod nas;
mod phone;
mod push_test;
mod token;

use std::io::Write as _;
use std::process::ExitCode;

use approvd_relay::config::{Config, ServeArgs};
use clap::{Parser, Subcommand};

/// approvd — push-approval relay: "approve this sign-in on your phone".
///
/// A NAS (or any login server) sends a signed approval request; the relay pushes it to the
/// user's phones and hands the phone's signed verdict back. Everything is signed and sealed end
/// to end: the relay can delay a sign-in, never approve one.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay server.
    ///
    /// With no options it listens on 127.0.0.1:8080 with the embedded memory store and logs
    /// pushes instead of sending them — enough to try everything on one machine. Every option
    /// can also be set with its APPROVD_* environment variable or in a TOML file (--config);
    /// a flag beats the environment, which beats the file.
    #[command(
        after_help = "Examples:\n  approvd serve\n  approvd serve --bind 0.0.0.0:8080 --handle-key-file /etc/approvd/handle-keys\n  APPROVD_MAX_WAIT_SECS=20 approvd serve --config /etc/approvd/relay.toml"
    )]
    Serve(ServeArgs),
    /// Act as a NAS: pair phones and request approvals (state in --home).
    Nas(nas::NasArgs),
    /// Run the NAS agent: apply mailbox notices as they arrive and serve the local approval
    /// API on a Unix socket, for login systems that are not written in Rust.
    Agent(approvd_agent::AgentArgs),
    /// Ask the phone to approve a PAM login (SSH, console): run by pam_approvd.so or
    /// pam_exec.so, through the agent; the exit status is the verdict (deploy/pam/).
    Pam(approvd_agent::pam::PamArgs),
    /// Send one test push to a device token through the configured credentials (or the
    /// --push-upstream relay), and print the credential used, the classified result and the
    /// time it took.
    PushTest(push_test::PushTestArgs),
    /// Sign an admission token (for a NAS) or a forwarding token (for a downstream relay) with
    /// the operator's private key, and print it.
    Token(token::TokenArgs),
    /// Act as a phone: enroll, read requests, approve or deny (state in --home).
    Phone(phone::PhoneArgs),
    /// Run the whole protocol in one process: a relay, a NAS, two phones; prints every step.
    Demo,
    /// Probe a running relay's /healthz (or --url …/readyz); exit 0 when it answers 200.
    ///
    /// For container HEALTHCHECKs and service managers on hosts without curl.
    Healthcheck(healthcheck::HealthcheckArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Nas(args) => client(nas::run(args)),
        Command::Agent(args) => client(agent(args)),
        Command::Pam(args) => client(async { ExitCode::from(approvd_agent::pam::run(args).await) }),
        Command::Phone(args) => client(phone::run(args)),
        Command::PushTest(args) => client(push_test::run(args)),
        Command::Token(args) => token::run(&args),
        Command::Demo => client(demo::run()),
        Command::Healthcheck(args) => client(healthcheck::run(args)),
    }
}

/// The NAS agent until SIGTERM, logging to standard error.
async fn agent(args: approvd_agent::AgentArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APPROVD_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    match approvd_agent::run(args, approvd_agent::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("approvd agent: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Run a client subcommand on a small runtime.
fn client(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            eprintln!("approvd: cannot start the runtime: {error}");
            ExitCode::from(3)
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::from_process(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("approvd: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let metrics = approvd_relay::metrics::Metrics::new();
    approvd_relay::logging::init(&config.log, &metrics);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("approvd: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = approvd_relay::server::bind(&config)?;
        let address = listener.local_addr()?;
        let state = approvd_relay::server::build_state(&config, metrics).await?;
        // Scripts and tests read this line to learn the port (--bind 127.0.0.1:0).
        println!("approvd listening on http://{address}");
        let _ = std::io::stdout().flush();
        approvd_relay::server::serve(
            listener,
            state,
            &config.http,
            approvd_relay::server::shutdown_signal(),
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("approvd: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Challenge ids are base64url: one in 64 starts with `-` and must not be read as a flag.
    #[test]
    fn a_challenge_id_starting_with_a_dash_is_an_id() {
        let cid = "-bcdefghijklmnopqrstuw";
        for words in [
            vec!["approvd", "phone", "deny", cid],
            vec!["approvd", "phone", "fraud", cid],
            vec!["approvd", "phone", "approve", cid, "--number", "42"],
            vec!["approvd", "nas", "cancel", cid],
        ] {
            let parsed = Cli::try_parse_from(&words);
            assert!(parsed.is_ok(), "{words:?}: {:?}", parsed.err());
            assert!(format!("{parsed:?}").contains(cid), "{words:?}");
        }
    }
}
