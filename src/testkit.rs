//! Test fixtures (feature `testkit`): a private `redis-server` on a free loopback port.
//!
//! Each server runs with `--save ""` in its own temporary directory, and a small watchdog
//! process removes it when the test process exits, however it exits, so no test leaves a
//! server behind.
//!
//! ```no_run
//! let redis = stargazer_keys::testkit::RedisServer::start().unwrap();
//! println!("{}", redis.url());
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

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
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null && kill -0 {redis} 2>/dev/null; do sleep 0.5; done; kill -9 {redis} 2>/dev/null",
                parent = std::process::id(),
                redis = server.id(),
            ))
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
