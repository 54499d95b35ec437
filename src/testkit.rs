//! Test fixtures (feature `testkit`): a private `redis-server` on a free loopback port, a
//! private three-master Redis Cluster made of such servers, and a private PostgreSQL server.
//!
//! Each server runs with `--save ""` in its own temporary directory, and a small watchdog
//! process kills it and removes that directory when the test process exits, however it exits,
//! so no test leaves a server behind.
//!
//! ```no_run
//! use stargazer_keys::testkit::{RedisCluster, RedisServer};
//!
//! let redis = RedisServer::start().unwrap();
//! println!("{}", redis.url());
//! // REDIS_URL for a cluster: every master's URL, comma-separated.
//! let cluster = RedisCluster::start().unwrap();
//! println!("{}", cluster.urls());
//! ```

/// The sealed-value format and data keys, for tests that open what storage holds with their
/// own hands (the library opens values only through the vault).
pub use crate::crypto::{DataKey, SealContext, SealedFormat, StoredValue, UnwrapError};
/// The PostgreSQL connection settings a `STARGAZER_DATABASE_URL` gives.
pub use crate::pg_keys::connection_config;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many masters a test cluster has.
const CLUSTER_MASTERS: usize = 3;

/// How long `redis-cli --cluster create` and the nodes' agreement on `cluster_state:ok` may take.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A private `redis-server` process on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    /// TLS only: (certificate, key, CA) files; the plain port is closed.
    tls: Option<[PathBuf; 3]>,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl RedisServer {
    /// Starts a server that speaks TLS only (`--port 0 --tls-port P`), with the certificate
    /// `certificates` issued; clients need no certificate of their own.
    pub fn start_tls(certificates: &TestCertificates) -> io::Result<Self> {
        Self::start_inner(&[], Some(certificates))
    }

    /// Starts a server on a free port (the binary is `$REDIS_SERVER` or `redis-server`).
    pub fn start() -> io::Result<Self> {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `--appendonly yes`).
    pub fn start_with_args(extra_args: &[&str]) -> io::Result<Self> {
        Self::start_inner(extra_args, None)
    }

    fn start_inner(extra_args: &[&str], tls: Option<&TestCertificates>) -> io::Result<Self> {
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = Self {
                port,
                dir: std::env::temp_dir().join(format!(
                    "stargazer-keys-redis-{}-{port}",
                    std::process::id()
                )),
                extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
                tls: tls.map(|c| [c.cert_path(), c.key_path(), c.ca_path()]),
                server: None,
                watchdog: None,
            };
            // A directory left by an earlier process of the same id must not leak its state
            // (a cluster node's `nodes.conf`) into this server.
            let _ = std::fs::remove_dir_all(&server.dir);
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// One server shared by every test of this test binary.
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| RedisServer::start().expect("start a private redis-server"))
    }

    /// The server's URL, `redis://127.0.0.1:PORT/` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL); [`RedisServer::restart`] brings it back on the same port.
    pub fn stop(&mut self) {
        for child in [self.server.take(), self.watchdog.take()]
            .into_iter()
            .flatten()
        {
            kill(child);
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections open but answers nothing, like
    /// a hung host. [`RedisServer::resume`] thaws it.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Thaws a server frozen by [`RedisServer::pause`] (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let server = self
            .server
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is stopped"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(server.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} failed with {status}"
            )))
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut server = Command::new(binary);
        match &self.tls {
            None => server.args(["--port", &self.port.to_string()]),
            Some([cert, key, ca]) => server
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let server = server
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot run redis-server (install it, or set REDIS_SERVER): {err}"),
                )
            })?;
        // Kills the server once this process is gone and then removes its directory (shared
        // servers live in statics, which are never dropped).
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
kill -9 "$2" 2>/dev/null
kill -0 "$1" 2>/dev/null || rm -rf "$3""#,
            )
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(server.id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.server = Some(server);
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                self.stop();
                return Err(io::Error::other(format!(
                    "redis-server exited at start-up with {status}"
                )));
            }
            let ready = match &self.tls {
                None => ping(self.port).is_ok(),
                Some([_, _, ca]) => {
                    Command::new(std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into()))
                        .args(["--tls", "--cacert"])
                        .arg(ca)
                        .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "PING"])
                        .stdin(Stdio::null())
                        .stderr(Stdio::null())
                        .output()
                        .is_ok_and(|out| out.stdout.starts_with(b"PONG"))
                }
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "redis-server did not answer PING",
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis Cluster of three masters (no replicas) on 127.0.0.1, each a [`RedisServer`]
/// with `--cluster-enabled yes`, formed with `redis-cli --cluster create` (`$REDIS_CLI` or
/// `redis-cli`, from Debian's `redis-tools`). Needs Redis 7.0 or later (`--cluster-port`).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas: usize,
}

impl RedisCluster {
    /// Starts three masters, forms the cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> io::Result<Self> {
        Self::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each: [`RedisCluster::nodes`] lists the masters
    /// first (as `redis-cli --cluster create` assigns them), then the replicas. A master that
    /// stops is replaced by its replica after the node timeout (2 s).
    pub fn start_with_replicas(replicas: usize) -> io::Result<Self> {
        let nodes = (0..CLUSTER_MASTERS * (1 + replicas))
            .map(|_| start_cluster_node())
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = Self { nodes, replicas };
        cluster.create()?;
        cluster.wait_until_ok()?;
        cluster.wait_for_replicas()?;
        Ok(cluster)
    }

    /// Whether the node at `index` is a master now (`INFO replication`).
    pub fn is_master(&self, index: usize) -> bool {
        command(self.nodes[index].port(), &["INFO", "replication"])
            .is_ok_and(|info| info.contains("role:master"))
    }

    /// Waits until every master has its replicas connected.
    fn wait_for_replicas(&self) -> io::Result<()> {
        if self.replicas == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let wanted = format!("connected_slaves:{}", self.replicas);
        for node in &self.nodes {
            loop {
                let info = command(node.port(), &["INFO", "replication"]).unwrap_or_default();
                if info.contains("role:slave") && info.contains("master_link_status:up")
                    || info.contains("role:master") && info.contains(&wanted)
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("node {} did not finish replicating: {info}", node.port()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// One cluster shared by every test of this test binary.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start().expect("start a private Redis Cluster"))
    }

    /// `REDIS_URL` for the cluster: every node's URL, comma-separated (the client learns
    /// which are masters from them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The masters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The masters, to stop or restart one (a restarted node rejoins from its `nodes.conf`).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    fn create(&self) -> io::Result<()> {
        let binary = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let mut child = Command::new(binary)
            .args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args([
                "--cluster-replicas",
                &self.replicas.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot run redis-cli (install redis-tools, or set REDIS_CLI): {err}"),
                )
            })?;
        // redis-cli waits for the nodes to agree for as long as it takes: bound it.
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                kill(child);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-cli --cluster create did not finish within {CLUSTER_READY_TIMEOUT:?}"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "redis-cli --cluster create failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        )))
    }

    fn wait_until_ok(&self) -> io::Result<()> {
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        for node in &self.nodes {
            loop {
                let info = command(node.port(), &["CLUSTER", "INFO"]);
                if info
                    .as_deref()
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the Redis Cluster node on port {} did not report cluster_state:ok within {CLUSTER_READY_TIMEOUT:?} (last CLUSTER INFO: {info:?})",
                            node.port()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// A cluster-enabled server; its cluster bus gets a free port of its own, since the default
/// (port + 10000) may be above 65535.
fn start_cluster_node() -> io::Result<RedisServer> {
    let mut last_err = None;
    for _ in 0..5 {
        let bus_port = free_port()?.to_string();
        let started = RedisServer::start_with_args(&[
            "--cluster-enabled",
            "yes",
            // Relative to the server's own temporary directory, so unique to it.
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus_port,
            "--cluster-node-timeout",
            "2000",
            // A replica that (re)joins syncs at once, not after the default 5 s wait for more.
            "--repl-diskless-sync-delay",
            "0",
        ]);
        match started {
            Ok(server) => return Ok(server),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("a cluster node did not start")))
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ping(port: u16) -> io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::other("unexpected PING reply"))
    }
}

/// Sends one command and reads a simple, integer or bulk-string reply as text.
fn command(port: u16, args: &[&str]) -> io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+" | ":", text)) => Ok(text.to_owned()),
        Some(("$", len)) => {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::other(format!("unexpected reply {line:?}")))?;
            let mut body = vec![0u8; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(io::Error::other)
        }
        _ => Err(io::Error::other(format!("unexpected reply {line:?}"))),
    }
}

/// A test certificate authority and a server certificate it issued for `localhost` and
/// `127.0.0.1` (P-256 keys, valid two days), made with the `openssl` command in a temporary
/// directory that is removed on drop.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Makes the CA and the server certificate.
    pub fn generate() -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "stargazer-keys-certs-{}-{}",
            std::process::id(),
            next_serial()
        ));
        std::fs::create_dir_all(&dir)?;
        let certificates = Self { dir };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        certificates.openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=stargazer-keys test CA",
                ],
            ]
            .concat(),
        )?;
        certificates.openssl(
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        )?;
        std::fs::write(
            certificates.dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )?;
        certificates.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        Ok(certificates)
    }

    fn openssl(&self, args: &[&str]) -> io::Result<()> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| io::Error::new(err.kind(), format!("cannot run openssl: {err}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "openssl {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// The CA's certificate (PEM): what clients trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL server on 127.0.0.1: a fresh cluster (`initdb`) in a temporary
/// directory, run without durability (`fsync=off`: tests need no crash safety), stopped and
/// removed when dropped or when the test process exits.
///
/// The binaries are found in `$STARGAZER_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package), else on `PATH`. PostgreSQL
/// refuses to run as root: as root, the server runs as the `postgres` user (which Debian's
/// package creates), through `setpriv`.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    /// Serves TLS with a certificate of this test CA (the files are copied in).
    tls: Option<[PathBuf; 2]>,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl PostgresServer {
    /// Makes a cluster and starts it on a free port.
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None)
    }

    /// Makes a cluster that also offers TLS (`ssl=on`) with the server certificate of
    /// `certificates`, and starts it on a free port. Clients may still connect without TLS.
    pub fn start_tls(certificates: &TestCertificates) -> io::Result<Self> {
        Self::start_inner(Some([certificates.cert_path(), certificates.key_path()]))
    }

    fn start_inner(tls: Option<[PathBuf; 2]>) -> io::Result<Self> {
        let bindir = postgres_bindir()?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let dir = std::env::temp_dir().join(format!(
                "stargazer-keys-postgres-{}-{port}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let mut server = Self {
                port,
                dir,
                bindir: bindir.clone(),
                tls: tls.clone(),
                server: None,
                watchdog: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("postgres did not start")))
    }

    /// One server shared by every test of this test binary.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| PostgresServer::start().expect("start a private PostgreSQL server"))
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (user `postgres`, no password: the cluster trusts loopback).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database with a fresh name and returns its URL.
    pub fn fresh_database(&self) -> io::Result<String> {
        let name = format!("t{}_{}", std::process::id(), next_serial());
        self.run_tool("createdb", &[&name])?;
        Ok(self.url(&name))
    }

    /// `pg_dump` of a database (schema and data, as SQL text).
    pub fn dump(&self, name: &str) -> io::Result<String> {
        self.run_tool("pg_dump", &["--no-owner", name])
    }

    /// Runs `psql -c sql` on a database and returns its unaligned, tuples-only output.
    pub fn psql(&self, name: &str, sql: &str) -> io::Result<String> {
        self.run_tool(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                name,
                "-c",
                sql,
            ],
        )
    }

    /// Runs a client tool of the server's version against it as `postgres`.
    fn run_tool(&self, tool: &str, args: &[&str]) -> io::Result<String> {
        let output = Command::new(self.bindir.join(tool))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "{tool} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        String::from_utf8(output.stdout).map_err(io::Error::other)
    }

    /// Kills the server (SIGKILL, like a crash); [`PostgresServer::restart`] brings it back.
    pub fn stop(&mut self) {
        for child in [self.server.take(), self.watchdog.take()]
            .into_iter()
            .flatten()
        {
            kill(child);
        }
    }

    /// Starts the server again on the same port, with the same data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // Backends of the killed postmaster end on their own; wait until the port is free.
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.dir.join("data").join("postmaster.pid"));
        self.spawn_server()
    }

    fn launch(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let as_root = running_as_root();
        if as_root {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&self.dir)
                .status()?;
            if !status.success() {
                return Err(io::Error::other(
                    "cannot hand the data directory to the postgres user (is Debian's postgresql package installed?)",
                ));
            }
        }
        let output = self
            .as_server_user(&self.bindir.join("initdb"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| io::Error::new(err.kind(), format!("cannot run initdb: {err}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        if let Some([cert, key]) = &self.tls {
            // The server reads them as its own user, and wants the key private.
            let data = self.dir.join("data");
            std::fs::copy(cert, data.join("server.crt"))?;
            std::fs::copy(key, data.join("server.key"))?;
            chmod(&data.join("server.key"), 0o600);
            if as_root {
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(data.join("server.crt"))
                    .arg(data.join("server.key"))
                    .status()?;
            }
        }
        self.spawn_server()
    }

    fn spawn_server(&mut self) -> io::Result<()> {
        let server = self
            .as_server_user(&self.bindir.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300", "-c", "shared_buffers=16MB"])
            .args(if self.tls.is_some() {
                &["-c", "ssl=on"][..]
            } else {
                &[]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("server.log"))?)
            .spawn()?;
        // Stops the server (SIGQUIT: immediate shutdown, then SIGKILL) once this process is
        // gone, then removes its directory.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
kill -QUIT "$2" 2>/dev/null; sleep 1; kill -9 "$2" 2>/dev/null
kill -0 "$1" 2>/dev/null || rm -rf "$3""#,
            )
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(server.id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.server = Some(server);
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "postgres exited at start-up with {status}: {}",
                    log.trim()
                )));
            }
            if self.run_tool("pg_isready", &[]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "postgres did not become ready",
        ))
    }

    /// A command for a server binary, run as `postgres` when this process is root.
    fn as_server_user(&self, binary: &std::path::Path) -> Command {
        if running_as_root() {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid",
                    "postgres",
                    "--regid",
                    "postgres",
                    "--clear-groups",
                ])
                .arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            // An immediate shutdown; the kill below makes sure.
            let _ = Command::new("kill")
                .args(["-QUIT", &server.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where PostgreSQL's server binaries are.
fn postgres_bindir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STARGAZER_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists());
    on_path.ok_or_else(|| {
        io::Error::other(
            "cannot find PostgreSQL's initdb (install Debian's postgresql package, or set STARGAZER_PG_BINDIR)",
        )
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// A number no earlier call in this process returned.
fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The permission bits of a file (panics, naming it, when it cannot be read).
#[cfg(unix)]
pub fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets a file's permission bits (panics when it cannot).
#[cfg(unix)]
pub fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {mode:o} {}: {err}", path.display()));
}

/// Log output kept in memory: an [`io::Write`] to hand to a `tracing` subscriber as
/// `with_writer(move || capture.clone())`; every clone writes to the same buffer.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
