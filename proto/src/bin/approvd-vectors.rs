//! Writes the protocol test vectors to a directory (default: `proto/vectors`).
//!
//! Usage: `cargo run -p approvd-proto --bin approvd-vectors [DIR]`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors"));
    std::fs::create_dir_all(&dir)?;
    for (name, text) in approvd_proto::vectors::generate() {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
