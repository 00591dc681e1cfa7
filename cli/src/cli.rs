//! What the client-side subcommands of `approvd` (`nas`, `phone`, `demo`) share: how an error
//! is printed and exits, QR codes drawn in the terminal, and the login context as a phone shows
//! it. The protocol lives in `approvd-client`.

use std::process::ExitCode;

use approvd_client::ClientError;
use approvd_proto::context::LoginContext;

/// Print an error the way every subcommand does and return exit code 3.
pub fn fail(error: &ClientError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(3)
}

/// A QR code of `text` drawn with Unicode half blocks (two rows per line), with a quiet zone.
pub fn qr(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(error) => format!("(cannot draw a QR code: {error})"),
    }
}

/// The login context as the phone shows it.
pub fn describe(context: &LoginContext) -> String {
    let mut lines = vec![
        format!("  user:      {}", context.user),
        format!("  service:   {} on {}", context.service, context.nas_label),
        format!("  kind:      {:?}", context.kind),
    ];
    if let Some(action) = &context.action {
        lines.push(format!("  action:    {action}"));
    }
    if let Some(ip) = &context.client_ip {
        lines.push(format!("  from:      {ip}"));
    }
    if let Some(location) = &context.location {
        lines.push(format!("  location:  {location}"));
    }
    if let Some(agent) = &context.user_agent {
        lines.push(format!("  browser:   {agent}"));
    }
    lines.join("\n")
}
