//! Test fixtures (feature `testkit`): a private `redis-server` on a free loopback port, and a
//! private three-master Redis Cluster made of such servers.
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
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port (the binary is `$REDIS_SERVER` or `redis-server`).
    pub fn start() -> io::Result<Self> {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `--appendonly yes`).
    pub fn start_with_args(extra_args: &[&str]) -> io::Result<Self> {
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

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
        let server = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
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
            if ping(self.port).is_ok() {
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
}

impl RedisCluster {
    /// Starts three masters, forms the cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> io::Result<Self> {
        let nodes = (0..CLUSTER_MASTERS)
            .map(|_| start_cluster_node())
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = Self { nodes };
        cluster.create()?;
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// One cluster shared by every test of this test binary.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start().expect("start a private Redis Cluster"))
    }

    /// `REDIS_URL` for the cluster: every master's URL, comma-separated.
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
