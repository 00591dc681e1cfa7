//! The `approvd` command: parses the command line and hands off to the library.

use clap::{Parser, Subcommand};

/// approvd — push-approval relay ("approve this sign-in on your phone").
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay server.
    Serve,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Serve => {
            eprintln!(
                "approvd {}: the relay server is not built yet; this build contains the protocol \
                 crate (approvd-proto) and its test vectors. See PROTOCOL.md.",
                env!("CARGO_PKG_VERSION")
            );
            std::process::ExitCode::from(2)
        }
    }
}
