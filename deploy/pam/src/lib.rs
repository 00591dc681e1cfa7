//! `pam_approvd.so`: the PAM side of "approve this login on your phone". It owns only the PAM
//! boundary — who is logging in (user, service, tty, remote host) and the conversation with
//! the person — and runs `approvd pam --conversation` for everything else: that helper asks
//! the NAS agent, waits for the verified outcome and says what to show or ask through lines on
//! its stdout (`info …`, `error …`, `prompt …`; prompt answers go back on its stdin). Its exit
//! status becomes the PAM result. Keeping the module this small keeps sshd free of an async
//! runtime and an HTTP client.
//!
//! ```text
//! auth required pam_approvd.so /usr/local/bin/approvd pam --socket /var/lib/approvd/nas/login.sock
//! ```

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

const PAM_SUCCESS: c_int = 0;
const PAM_SERVICE_ERR: c_int = 3;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_AUTH_ERR: c_int = 7;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_CONV_ERR: c_int = 19;

const PAM_SERVICE: c_int = 1;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_CONV: c_int = 5;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

const PAM_SILENT: c_int = 0x8000;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

extern "C" {
    fn pam_get_user(pamh: *mut c_void, user: *mut *const c_char, prompt: *const c_char) -> c_int;
    fn pam_get_item(pamh: *const c_void, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn free(pointer: *mut c_void);
}

/// A string item of the PAM handle, if set.
///
/// # Safety
/// `pamh` must be the handle PAM passed to this module.
unsafe fn item(pamh: *mut c_void, item_type: c_int) -> Option<String> {
    let mut value: *const c_void = std::ptr::null();
    if pam_get_item(pamh, item_type, &mut value) != PAM_SUCCESS || value.is_null() {
        return None;
    }
    Some(
        CStr::from_ptr(value.cast::<c_char>())
            .to_string_lossy()
            .into_owned(),
    )
}

/// Show `text` or ask for an answer through the application's conversation function.
///
/// # Safety
/// `pamh` must be the handle PAM passed to this module.
unsafe fn converse(pamh: *mut c_void, style: c_int, text: &str) -> Result<Option<String>, c_int> {
    let mut conv: *const c_void = std::ptr::null();
    if pam_get_item(pamh, PAM_CONV, &mut conv) != PAM_SUCCESS || conv.is_null() {
        return Err(PAM_CONV_ERR);
    }
    let conv = &*conv.cast::<PamConv>();
    let Some(function) = conv.conv else {
        return Err(PAM_CONV_ERR);
    };
    let text = CString::new(text.replace('\0', " ")).map_err(|_| PAM_CONV_ERR)?;
    let message = PamMessage {
        msg_style: style,
        msg: text.as_ptr(),
    };
    let mut messages: *const PamMessage = &message;
    let mut response: *mut PamResponse = std::ptr::null_mut();
    let status = function(1, &mut messages, &mut response, conv.appdata_ptr);
    if status != PAM_SUCCESS {
        return Err(status);
    }
    if response.is_null() {
        return Ok(None);
    }
    let answer = (*response).resp;
    let text = if answer.is_null() {
        None
    } else {
        let text = CStr::from_ptr(answer).to_string_lossy().into_owned();
        // The answer is a code: wipe it before handing the memory back.
        let length = CStr::from_ptr(answer).to_bytes().len();
        std::ptr::write_bytes(answer, 0, length);
        free(answer.cast());
        Some(text)
    };
    free(response.cast());
    Ok(text)
}

/// The module's arguments as Rust strings.
///
/// # Safety
/// `argv` must point to `argc` NUL-terminated strings (as PAM passes them).
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    (0..usize::try_from(argc).unwrap_or(0))
        .map(|index| *argv.add(index))
        .filter(|argument| !argument.is_null())
        .map(|argument| CStr::from_ptr(argument).to_string_lossy().into_owned())
        .collect()
}

/// Authenticate: run the helper, relay its lines, map its exit status.
///
/// # Safety
/// Called by libpam with its handle and the module's arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut c_void,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let arguments = arguments(argc, argv);
    let Some((helper, helper_arguments)) = arguments.split_first() else {
        return PAM_SERVICE_ERR;
    };
    if !helper.starts_with('/') {
        return PAM_SERVICE_ERR;
    }
    let mut user: *const c_char = std::ptr::null();
    if pam_get_user(pamh, &mut user, std::ptr::null()) != PAM_SUCCESS || user.is_null() {
        return PAM_USER_UNKNOWN;
    }
    let user = CStr::from_ptr(user).to_string_lossy().into_owned();
    let mut command = Command::new(helper);
    command
        .args(helper_arguments)
        .arg("--conversation")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PAM_USER", &user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, item_type) in [
        ("PAM_SERVICE", PAM_SERVICE),
        ("PAM_TTY", PAM_TTY),
        ("PAM_RHOST", PAM_RHOST),
    ] {
        if let Some(value) = item(pamh, item_type) {
            command.env(name, value);
        }
    }
    let Ok(mut child) = command.spawn() else {
        return PAM_SYSTEM_ERR;
    };
    let mut stdin = child.stdin.take();
    let silent = flags & PAM_SILENT != 0;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let (kind, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match kind {
                "info" | "error" if silent => {}
                "info" => {
                    let _ = converse(pamh, PAM_TEXT_INFO, text);
                }
                "error" => {
                    let _ = converse(pamh, PAM_ERROR_MSG, text);
                }
                "prompt" => {
                    let answer = converse(pamh, PAM_PROMPT_ECHO_OFF, text).ok().flatten();
                    match (answer, stdin.as_mut()) {
                        (Some(answer), Some(pipe)) => {
                            let _ = writeln!(pipe, "{answer}");
                            let _ = pipe.flush();
                        }
                        // No answer: the helper reads end-of-file and refuses.
                        _ => drop(stdin.take()),
                    }
                }
                _ => {}
            }
        }
    }
    drop(stdin);
    match child.wait().map(|status| status.code()) {
        Ok(Some(0)) => PAM_SUCCESS,
        Ok(Some(1)) => PAM_AUTH_ERR,
        Ok(Some(2)) => PAM_AUTHINFO_UNAVAIL,
        Ok(Some(3)) => PAM_USER_UNKNOWN,
        Ok(Some(4)) => PAM_SERVICE_ERR,
        _ => PAM_SYSTEM_ERR,
    }
}

/// Nothing to set: approvd grants no credentials.
///
/// # Safety
/// Called by libpam.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut c_void,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PAM_SUCCESS
}
