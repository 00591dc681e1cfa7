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

/// The login context as the phone shows it. Every field is shown as text ([`shown`]); the
/// user agent is labelled as what the client claims (PROTOCOL.md §4.1): the NAS vouches for
/// the address it saw, nobody for the browser's name.
pub fn describe(context: &LoginContext) -> String {
    let mut lines = vec![
        format!("  user:      {}", shown(&context.user)),
        format!(
            "  service:   {} on {}",
            shown(&context.service),
            shown(&context.nas_label)
        ),
        format!("  kind:      {:?}", context.kind),
    ];
    if let Some(action) = &context.action {
        use approvd_proto::context::LoginKind;
        let label = match context.kind {
            LoginKind::Notice => "notice:    ",
            LoginKind::Retire => "retired:   ",
            LoginKind::Action | LoginKind::Login | LoginKind::Passwordless => "action:    ",
        };
        lines.push(format!("  {label}{}", shown(action)));
    }
    if let Some(ip) = &context.client_ip {
        lines.push(format!("  from:      {}", shown(ip)));
    }
    if let Some(location) = &context.location {
        lines.push(format!("  location:  {}", shown(location)));
    }
    if let Some(agent) = &context.user_agent {
        lines.push(format!(
            "  browser:   {} (as the browser says; unverified)",
            shown(agent)
        ));
    }
    lines.join("\n")
}

/// Context text as a terminal may print it: control characters (line breaks, escape sequences
/// that could redraw the screen) and the invisible marks that reorder or hide text are shown
/// escaped (`\u{202e}`), never acted on, so a client-chosen field cannot forge another line.
pub fn shown(text: &str) -> String {
    let hides = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    text.chars()
        .map(|c| {
            if hides(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_chosen_user_agent_can_neither_forge_a_line_nor_pass_as_verified() {
        let context = LoginContext {
            user: "alice".to_owned(),
            service: "SSH".to_owned(),
            nas_label: "home-nas".to_owned(),
            client_ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Firefox\n  from:      10.0.0.1\u{1b}[2K\u{202e}gnp.exe".to_owned()),
            location: None,
            kind: approvd_proto::context::LoginKind::Login,
            action: None,
            time: 1_800_000_000,
        };
        let shown = describe(&context);
        assert_eq!(shown.lines().count(), 5, "{shown}");
        assert_eq!(
            shown.lines().filter(|line| line.contains("from:")).count(),
            2,
            "the forged line stays inside the browser's: {shown}"
        );
        let browser = shown
            .lines()
            .find(|line| line.starts_with("  browser:"))
            .expect("the browser line");
        assert!(
            browser.ends_with("(as the browser says; unverified)"),
            "{browser}"
        );
        assert!(
            browser.contains("\\u{a}") && browser.contains("\\u{1b}"),
            "{browser}"
        );
        assert!(browser.contains("\\u{202e}"), "{browser}");
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'));
    }
}
