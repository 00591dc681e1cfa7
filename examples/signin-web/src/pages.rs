//! The HTML of every page, rendered on the server: plain forms that work without JavaScript,
//! one stylesheet and one script served by this binary (nothing is fetched from elsewhere).

use crate::state::{Attempt, Mode, Progress};

/// Escape text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str, script: bool) -> String {
    let script = if script {
        r#"<script src="/static/signin.js" defer></script>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Sign in</title>
<link rel="stylesheet" href="/static/signin.css">
{script}
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title)
    )
}

fn notice(message: Option<&str>) -> String {
    message
        .map(|message| format!(r#"<p class="notice" role="alert">{}</p>"#, escape(message)))
        .unwrap_or_default()
}

fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    )
}

pub fn login(csrf: &str, message: Option<&str>, username: &str) -> String {
    layout(
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
{notice}
<form id="login" method="post" action="/login">
{csrf}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="64" value="{username}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<button type="submit">Sign in</button>
</form>
<p><a id="go-passwordless" href="/passwordless">Sign in without a password</a></p>"#,
            notice = notice(message),
            csrf = csrf_field(csrf),
            username = escape(username),
        ),
        false,
    )
}

pub fn passwordless(csrf: &str, message: Option<&str>) -> String {
    layout(
        "Sign in without a password",
        &format!(
            r#"<h1>Sign in with your phone</h1>
{notice}
<form id="passwordless" method="post" action="/passwordless">
{csrf}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="64" autofocus>
<button type="submit">Send a sign-in request to my phone</button>
</form>
<p><a href="/login">Sign in with a password</a></p>"#,
            notice = notice(message),
            csrf = csrf_field(csrf),
        ),
        false,
    )
}

/// The message a person reads when an attempt ended without signing in.
pub fn ended_message(status: &str) -> &'static str {
    match status {
        "denied" => "You denied this sign-in on your phone. If it was you, send a new request.",
        "wrong_number" => {
            "The number chosen on your phone did not match the one shown here. Nobody was signed in; send a new request to try again."
        }
        "fraud" => {
            "You reported this sign-in as not you. Nobody was signed in, and your phone will not be asked again for a while. If someone knows your password, change it."
        }
        "expired" => "The request expired before your phone answered. Send a new one.",
        "cancelled" => "This sign-in request was cancelled.",
        "no_phone" => "No phone is paired with this account yet. Ask your administrator to pair one.",
        "rate_limited" => {
            "Too many requests were sent to your phone in the last minute. Wait a minute and send again, or use a code instead."
        }
        "cooling_down" => {
            "A recent sign-in to this account was reported as not you, or approved with wrong numbers, so your phone is not asked for a while. Use a code from the approvd app, or try again later."
        }
        "invalid" => "Your phone's answer could not be verified. Nobody was signed in.",
        _ => "This sign-in request ended.",
    }
}

pub const UNREACHABLE: &str =
    "Your phone cannot be reached right now (the approval service is unreachable). Use the code shown in the approvd app instead: it works offline.";

pub fn attempt(id: &str, attempt: &Attempt, csrf: &str) -> String {
    let phones = match attempt.mode {
        Mode::TwoStep if !attempt.phones.is_empty() => format!(
            r#"<p id="phones">Sent to {}.</p>"#,
            attempt
                .phones
                .iter()
                .map(|name| format!("<strong>{}</strong>", escape(name)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => r#"<p id="phones">Sent to your phones.</p>"#.to_owned(),
    };
    // Nothing was sent (the relay was unreachable, no phone): no number to type.
    // (An unreachable relay may still leave a request open, for a code only.)
    let sent = (attempt.request_id.is_some() || attempt.progress == Progress::Waiting)
        && attempt.progress != Progress::Unreachable;
    let request = if sent {
        format!(
            r#"<p>Open <strong>approvd</strong> on your phone and type this number there:</p>
<p id="number" aria-label="Number to type on your phone">{number}</p>
{phones}"#,
            number = escape(&attempt.number),
        )
    } else {
        String::new()
    };
    let (status_class, status_text) = match &attempt.progress {
        Progress::Waiting | Progress::Approved => ("waiting", "Waiting for your phone…"),
        Progress::Ended(status) => ("ended", ended_message(status)),
        Progress::Unreachable => ("ended", UNREACHABLE),
    };
    layout(
        "Approve on your phone",
        &format!(
            r#"<h1>Approve on your phone</h1>
<section id="attempt" class="{section_class}" data-attempt="{id}" data-expires="{expires}">
{request}
<p id="status" class="{status_class}" role="status" aria-live="polite">{status_text}</p>
</section>
<form id="finish" method="post" action="/attempt/{id}/finish">
{csrf}
<noscript><p>JavaScript is off: after approving on your phone, press</p><button type="submit">Continue</button></noscript>
</form>
<div class="actions">
<form id="resend" method="post" action="/attempt/{id}/resend">
{csrf}
<button type="submit" class="secondary">Send again</button>
</form>
<a id="use-code" class="button secondary" href="/attempt/{id}/code">Use a code instead</a>
<form id="cancel" method="post" action="/attempt/{id}/cancel">
{csrf}
<button type="submit" class="secondary">Cancel</button>
</form>
</div>"#,
            id = escape(id),
            expires = attempt.expires,
            section_class = if status_class == "ended" { "over" } else { "" },
            csrf = csrf_field(csrf),
        ),
        true,
    )
}

/// The code form; `with_password` on a passwordless attempt, where the code replaces the phone
/// and the password must come back as the first factor.
pub fn code(id: &str, csrf: &str, message: Option<&str>, with_password: bool) -> String {
    let password = if with_password {
        r#"<p>A code stands in for your phone, not for your password: type your password too.</p>
<label for="password-input">Password</label>
<input id="password-input" name="password" type="password" autocomplete="current-password" required maxlength="1024">
"#
    } else {
        ""
    };
    layout(
        "Use a code",
        &format!(
            r#"<h1>Use a code</h1>
{notice}
<p>Type the 6-digit code the approvd app shows (it works without a network), or one of your recovery codes.</p>
<form id="code" method="post" action="/attempt/{id}/code">
{csrf}
{password}<label for="code-input">Code</label>
<input id="code-input" name="code" autocomplete="one-time-code" required maxlength="64" autofocus>
<button type="submit">Sign in</button>
</form>
<p><a href="/login">Start over</a></p>"#,
            notice = notice(message),
            id = escape(id),
            csrf = csrf_field(csrf),
        ),
        false,
    )
}

pub fn signed_in(user: &str, csrf: &str) -> String {
    layout(
        "Signed in",
        &format!(
            r#"<h1 id="signed-in">Signed in as {user}</h1>
<p>Welcome back. This page stands for your NAS's desktop.</p>
<form id="logout" method="post" action="/logout">
{csrf}
<button type="submit" class="secondary">Sign out</button>
</form>"#,
            user = escape(user),
            csrf = csrf_field(csrf),
        ),
        false,
    )
}

/// A page for an error the person can do something about (expired page, too many requests).
pub fn problem(title: &str, message: &str) -> String {
    layout(
        title,
        &format!(
            r#"<h1>{title}</h1>
<p class="notice" role="alert">{message}</p>
<p><a href="/login">Back to sign-in</a></p>"#,
            title = escape(title),
            message = escape(message),
        ),
        false,
    )
}

pub const STYLE: &str = r#"*{box-sizing:border-box}
body{margin:0;font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2125}
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin-top:.8rem;font-weight:600}
input{width:100%;padding:.6rem;font:inherit;border:1px solid #8c9196;border-radius:6px}
button,.button{display:inline-block;margin-top:1rem;padding:.6rem 1rem;font:inherit;border:0;border-radius:6px;background:#0b5cd5;color:#fff;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#e8eaed;color:#1d2125}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:baseline}
.actions form{margin:0}
#number{font-size:3.5rem;font-weight:700;letter-spacing:.3rem;text-align:center;margin:.5rem 0}
.notice{background:#fff4e5;border-left:4px solid #e8a33d;padding:.6rem}
#status.waiting::before{content:"";display:inline-block;width:.9em;height:.9em;margin-right:.5em;border:3px solid #0b5cd5;border-right-color:transparent;border-radius:50%;animation:spin 1s linear infinite;vertical-align:-.1em}
.over #number{color:#9aa0a6;text-decoration:line-through}
#status.ended{background:#fdecea;border-left:4px solid #c9372c;padding:.6rem}
@keyframes spin{to{transform:rotate(360deg)}}
@media (prefers-reduced-motion:reduce){#status.waiting::before{animation:none}}
"#;

/// The live wait: long-polls the attempt's status, signs in on approval, shows the message
/// otherwise, and cancels the request when the person leaves the page (but not for "Use a code
/// instead": the code is checked inside the request).
pub const SCRIPT: &str = r##"(function () {
  "use strict";
  var section = document.getElementById("attempt");
  if (!section) { return; }
  var id = section.getAttribute("data-attempt");
  var status = document.getElementById("status");
  var csrf = document.querySelector("#finish input[name=csrf]").value;
  var settled = false;
  function show(text, ended) {
    status.textContent = text;
    status.className = ended ? "ended" : "waiting";
  }
  function poll() {
    fetch("/attempt/" + id + "/status?wait=25", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (answer.status === "approved") {
          settled = true;
          show("Approved. Signing you in…", false);
          document.getElementById("finish").submit();
        } else if (answer.status === "pending") {
          poll();
        } else if (answer.status === "unreachable_retry") {
          show(answer.message, false);
          setTimeout(poll, 3000);
        } else {
          settled = true;
          section.classList.add("over");
          show(answer.message, true);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  ["resend", "cancel"].forEach(function (name) {
    document.getElementById(name).addEventListener("submit", function () { settled = true; });
  });
  // A code is checked inside this request (which an accepted code ends): keep it open.
  var useCode = document.getElementById("use-code");
  if (useCode) { useCode.addEventListener("click", function () { settled = true; }); }
  window.addEventListener("pagehide", function () {
    if (settled) { return; }
    settled = true;
    navigator.sendBeacon("/attempt/" + id + "/cancel", new URLSearchParams({ csrf: csrf }));
  });
  if (status.className === "waiting") { poll(); } else { settled = true; }
})();
"##;
