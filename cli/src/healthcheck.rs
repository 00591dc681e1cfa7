//! `approvd healthcheck`: probe a relay's `/healthz` (or `/readyz`) and exit 0 when it answers
//! 200, for container HEALTHCHECKs and scripts on images that have no curl.

use std::process::ExitCode;
use std::time::Duration;

/// Probe a running relay.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// What to ask: the relay's /healthz (alive) or /readyz (alive and its store reachable).
    /// [default: /healthz on the port APPROVD_BIND names, on loopback; else 127.0.0.1:8080]
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

/// `/healthz` where a relay started with `bind` (from APPROVD_BIND) answers on this host.
fn default_url(bind: Option<&str>) -> String {
    let port = bind
        .and_then(|bind| bind.parse::<std::net::SocketAddr>().ok())
        .map_or(8080, |address| address.port());
    format!("http://127.0.0.1:{port}/healthz")
}

pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let url = args
        .url
        .unwrap_or_else(|| default_url(std::env::var("APPROVD_BIND").ok().as_deref()));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs.max(1)))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("approvd healthcheck: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("{} {}", url, response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!(
                "approvd healthcheck: {} answered {}",
                url,
                response.status()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("approvd healthcheck: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_probe_follows_the_bind_port_on_loopback() {
        assert_eq!(
            default_url(Some("0.0.0.0:9090")),
            "http://127.0.0.1:9090/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:8443")),
            "http://127.0.0.1:8443/healthz"
        );
        assert_eq!(default_url(None), "http://127.0.0.1:8080/healthz");
        assert_eq!(default_url(Some("junk")), "http://127.0.0.1:8080/healthz");
    }
}
