//! Certificates for tests, made with the `openssl` command: a CA, a server certificate for
//! 127.0.0.1 that it signs (also usable as a client certificate, as Redis nodes need for their
//! cluster bus), and a client certificate for the relay. Everything lives one day.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempDir;

/// A CA and the certificates it signed.
#[derive(Debug)]
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed CA: `<name>.key` and `<name>.pem` in `dir`.
fn new_ca(dir: &Path, name: &str, subject: &str) {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    );
}

/// A P-256 key and a request for `subject`, signed by the CA with `extensions`.
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    let (key, csr, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&ext), extensions).expect("extensions file");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

impl TestPki {
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        new_ca(&dir.0, "ca", "/CN=approvd test CA");
        issue(
            &dir.0,
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        );
        issue(
            &dir.0,
            "client",
            "/CN=approvd relay",
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        let path = |name: &str| dir.0.join(name);
        Self {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            _dir: dir,
        }
    }

    /// A second CA's certificate, which signed nothing here (for "wrong CA" tests).
    pub fn unrelated_ca(dir: &Path) -> PathBuf {
        new_ca(dir, "other-ca", "/CN=someone else");
        dir.join("other-ca.pem")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
