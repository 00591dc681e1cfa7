//! Records the commit the relay is built from, for `approvd_build_info`: `APPROVD_GIT_SHA` when
//! set (image builds, where `.git` is not copied in), else `git rev-parse`, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=APPROVD_GIT_SHA");
    // A new commit moves the branch the HEAD file names (not the HEAD file itself).
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD") {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            let path = format!("../.git/{branch}");
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let sha = std::env::var("APPROVD_GIT_SHA")
        .ok()
        .filter(|sha| !sha.is_empty())
        .or_else(|| {
            let output = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        })
        .filter(|sha| sha.chars().all(|c| c.is_ascii_alphanumeric()) && !sha.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=APPROVD_GIT_SHA={sha}");
}
