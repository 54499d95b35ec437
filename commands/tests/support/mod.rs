//! The harness of the operator-binary tests: a working directory with a `data/` folder, the
//! settings the binary runs with (and nothing else of the environment), and what a run did.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_stargazer-keys");

/// A working directory with a `data/` folder, and the settings the binary runs with.
pub struct Setup {
    pub dir: TempDir,
    pub vars: Vec<(String, String)>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Setup {
    /// The database at `data/stargazer-keys.db`, in a `data/` of mode 0700 (as the bot makes
    /// it); no other setting.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut setup = Self {
            dir,
            vars: Vec::new(),
        };
        let db = setup.db_path().display().to_string();
        setup.set("STARGAZER_DB_PATH", db);
        setup
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("stargazer-keys.db")
    }

    /// Sets a variable, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.unset(name);
        self.vars.push((name.to_owned(), value.into()));
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.vars.retain(|(k, _)| k != name);
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args);
        self.environment(&mut command);
        command
    }

    /// Only the settings, in the working directory.
    fn environment(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path());
    }

    /// The command under `sh` with the umask set first: the umask is process-wide, so a test
    /// never changes its own.
    pub fn command_under_umask(&self, umask: &str, args: &[&str]) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(r#"umask {umask}; exec "$0" "$@""#))
            .arg(BIN)
            .args(args);
        self.environment(&mut command);
        command
    }

    /// Runs with an empty stdin; a run still going after `limit` is killed (`code` is `None`).
    pub fn run_for_at_most(&self, args: &[&str], limit: Duration) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
        }
        Run::from(child.wait_with_output().unwrap())
    }

    /// Runs with an empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Runs with `input` written to stdin from a thread, so a binary that stops reading early
    /// cannot block the test.
    pub fn run_with_stdin(&self, args: &[&str], input: impl Into<Vec<u8>>) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.into();
        // A broken pipe is the binary refusing to read on: its exit status tells the story.
        let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from(output)
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    /// The single stderr line of a failed run (status 1), after checking there is exactly one.
    pub fn one_error_line(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        lines[0]
    }

    /// Whether `text` appears on stdout or stderr.
    pub fn mentions(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }
}
