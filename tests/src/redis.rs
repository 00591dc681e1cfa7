//! Real `redis-server` processes for tests: one standalone server, or a 3-master Redis Cluster,
//! on free loopback ports with persistence off, killed on drop; optionally TLS-only (with a
//! [`TestPki`], clients must present its client certificate) and with a password. Missing
//! `redis-server` fails loudly (scripts/test installs it).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tls::TestPki;
use crate::TempDir;

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// How `redis-cli` reaches a server: its port, TLS, password.
#[derive(Debug, Clone, Default)]
struct Access {
    tls: Option<Arc<TestPki>>,
    password: Option<String>,
}

impl Access {
    /// `redis-cli` options for TLS and the password.
    fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(pki) = &self.tls {
            args.push("--tls".to_owned());
            for (flag, path) in [
                ("--cacert", &pki.ca),
                ("--cert", &pki.client_cert),
                ("--key", &pki.client_key),
            ] {
                args.push(flag.to_owned());
                args.push(path.display().to_string());
            }
        }
        if let Some(password) = &self.password {
            args.extend([
                "--no-auth-warning".to_owned(),
                "-a".to_owned(),
                password.clone(),
            ]);
        }
        args
    }
}

fn redis_cli(port: u16, access: &Access, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(access.cli_args())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Kills the server when this test process is gone, even if it never runs `Drop`
    /// (servers shared through a `static` are never dropped).
    watchdog: Option<Child>,
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    access: Access,
}

impl RedisServer {
    /// Start a standalone server.
    pub fn start() -> Self {
        Self::start_with(&[], Access::default())
    }

    /// Start a server that speaks only TLS with `pki`'s server certificate and requires
    /// clients to present a certificate `pki`'s CA signed.
    pub fn start_tls(pki: Arc<TestPki>) -> Self {
        Self::start_with(
            &[],
            Access {
                tls: Some(pki),
                password: None,
            },
        )
    }

    /// Start a server that requires `password` (for the `default` user).
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(
            &["--requirepass", password],
            Access {
                tls: None,
                password: Some(password.to_owned()),
            },
        )
    }

    fn start_with(extra: &[&str], access: Access) -> Self {
        let mut server = Self {
            child: None,
            watchdog: None,
            port: free_port(),
            dir: TempDir::new("redis"),
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            access,
        };
        server.launch();
        server
    }

    /// The listening options: plain TCP, or TLS only (port 0 turns plain TCP off).
    fn listen_args(&self) -> Vec<String> {
        let port = self.port.to_string();
        let Some(pki) = &self.access.tls else {
            return vec!["--port".to_owned(), port];
        };
        let mut args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port,
        ];
        for (flag, path) in [
            ("--tls-cert-file", &pki.server_cert),
            ("--tls-key-file", &pki.server_key),
            ("--tls-ca-cert-file", &pki.ca),
        ] {
            args.push(flag.to_owned());
            args.push(path.display().to_string());
        }
        args.extend(["--tls-auth-clients".to_owned(), "yes".to_owned()]);
        args
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(self.listen_args())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", self.dir.0.to_str().expect("utf-8 temp dir")])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}): install it (Debian: apt-get install redis-server) or run scripts/test as root")
            });
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill {server} 2>/dev/null",
                parent = std::process::id(),
                server = child.id()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the redis watchdog");
        self.child = Some(child);
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(self.port, &self.access, &["PING"])
            .as_deref()
            .map(str::trim)
            != Some("PONG")
        {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://` or, for a TLS server, `rediss://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        let scheme = if self.access.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Kill the server (as in a crash).
    pub fn kill(&mut self) {
        for mut child in [self.child.take(), self.watchdog.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (empty: persistence is off).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, &self.access, args).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas).
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(Access::default())
    }

    /// A cluster whose nodes speak only TLS, also among themselves (`--tls-cluster`).
    pub fn start_tls(pki: Arc<TestPki>) -> Self {
        Self::start_with(Access {
            tls: Some(pki),
            password: None,
        })
    }

    fn start_with(access: Access) -> Self {
        let mut flags = vec!["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
        if access.tls.is_some() {
            flags.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(&flags, access.clone()))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(access.cli_args())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            output.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes
                .iter()
                .all(|node| node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    /// `host:port` of every node (the `--redis-cluster` value, comma-joined).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect()
    }

    /// Every key on every node matching `pattern`.
    pub fn scan(&self, pattern: &str) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|node| {
                node.cli(&["--scan", "--pattern", pattern])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A Sentinel group as production runs it: one master and one replica that require
/// [`RedisSentinels::PASSWORD`], and three Sentinels that require
/// [`RedisSentinels::SENTINEL_PASSWORD`], watching them as `mymaster` (down after 1 s), so a
/// killed master is replaced within seconds.
#[derive(Debug)]
pub struct RedisSentinels {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<Child>,
    /// `host:port` of each Sentinel (the `--redis-sentinel` value, comma-joined).
    pub nodes: Vec<String>,
    tls: Option<Arc<TestPki>>,
    _dir: TempDir,
}

impl RedisSentinels {
    pub const MASTER: &'static str = "mymaster";
    /// The data nodes' password.
    pub const PASSWORD: &'static str = "data-nodes-secret";
    /// The Sentinels' own password.
    pub const SENTINEL_PASSWORD: &'static str = "sentinels-secret";

    fn sentinel_access(&self) -> Access {
        Access {
            tls: self.tls.clone(),
            password: Some(Self::SENTINEL_PASSWORD.to_owned()),
        }
    }

    /// A group on plain TCP.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A group that speaks only TLS, among itself too (clients present `pki`'s client
    /// certificate).
    pub fn start_tls(pki: Arc<TestPki>) -> Self {
        Self::start_with(Some(pki))
    }

    fn start_with(tls: Option<Arc<TestPki>>) -> Self {
        let data = Access {
            tls: tls.clone(),
            password: Some(Self::PASSWORD.to_owned()),
        };
        let mut flags = vec![
            "--requirepass",
            Self::PASSWORD,
            "--masterauth",
            Self::PASSWORD,
        ];
        if tls.is_some() {
            flags.extend(["--tls-replication", "yes"]);
        }
        let master = RedisServer::start_with(&flags, data.clone());
        let master_port = master.port.to_string();
        flags.extend(["--replicaof", "127.0.0.1", &master_port]);
        let replica = RedisServer::start_with(&flags, data);
        let dir = TempDir::new("sentinels");
        let mut sentinels = Vec::new();
        let mut nodes = Vec::new();
        for index in 0..3 {
            let port = free_port();
            let listen = match &tls {
                None => format!("port {port}\n"),
                Some(pki) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients yes\ntls-replication yes\n",
                    pki.server_cert.display(),
                    pki.server_key.display(),
                    pki.ca.display()
                ),
            };
            let conf = dir.0.join(format!("sentinel-{index}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "{listen}bind 127.0.0.1\ndir {dir}\nrequirepass {own}\n\
                     sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                     sentinel auth-pass {name} {data}\n\
                     sentinel sentinel-pass {own}\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n",
                    dir = dir.0.display(),
                    name = Self::MASTER,
                    own = Self::SENTINEL_PASSWORD,
                    data = Self::PASSWORD,
                ),
            )
            .expect("sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a sentinel");
            sentinels.push(child);
            nodes.push(format!("127.0.0.1:{port}"));
        }
        let group = Self {
            master,
            replica,
            sentinels,
            nodes,
            tls,
            _dir: dir,
        };
        group.wait_until_watched();
        group
    }

    /// Until the replica is in sync and every Sentinel knows it and the other Sentinels (a
    /// failover needs both).
    fn wait_until_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = self
                .replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up");
            let watched = self.nodes.iter().all(|node| {
                let port: u16 = node
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let info = redis_cli(
                    port,
                    &self.sentinel_access(),
                    &["SENTINEL", "MASTER", Self::MASTER],
                )
                .unwrap_or_default();
                let lines: Vec<&str> = info.lines().map(str::trim).collect();
                let field = |name: &str| {
                    lines
                        .iter()
                        .position(|line| *line == name)
                        .and_then(|at| lines.get(at + 1))
                        .copied()
                        .unwrap_or("0")
                };
                field("num-slaves") == "1" && field("num-other-sentinels") == "2"
            });
            if synced && watched {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel group did not settle"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `host:port` the Sentinels name as master now.
    pub fn current_master(&self) -> Option<String> {
        let port: u16 = self.nodes[0].rsplit(':').next()?.parse().ok()?;
        let reply = redis_cli(
            port,
            &self.sentinel_access(),
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER],
        )?;
        let mut lines = reply.lines().map(str::trim);
        Some(format!("{}:{}", lines.next()?, lines.next()?))
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for child in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
