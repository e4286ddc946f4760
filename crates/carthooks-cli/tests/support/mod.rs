//! Running the real `carthooks` binary as a person or a script would:
//! against carthooks-mock on a loopback port of the test's own, with a
//! config directory of its own, and no credentials from the developer's
//! environment.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockServer,
};

pub const APP: u64 = DEFAULT_APP_ID;
pub const COLL: u64 = DEFAULT_COLLECTION_ID;

/// The variables the CLI reads; cleared for every run, then set as asked.
const CLEARED: [&str; 8] = [
    "CARTHOOKS_API_URL",
    "CARTHOOKS_ACCESS_TOKEN",
    "CARTHOOKS_CLIENT_ID",
    "CARTHOOKS_CLIENT_SECRET",
    "CARTHOOKS_PROFILE",
    "CARTHOOKS_TIMEOUT",
    "NO_COLOR",
    "RUST_LOG",
];

/// A fake Carthooks and a config directory for the CLI.
pub struct Setup {
    pub server: MockServer,
    pub config_dir: PathBuf,
    /// Variables every run gets (after the cleared ones).
    pub env: Vec<(String, String)>,
}

/// What a run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts exit 0.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "the command failed: {self:?}");
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_carthooks")
}

/// A scratch directory under the system's temp dir, new for each call.
pub fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "carthooks-cli-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Setup {
    /// The mock with `extra` items more than its three; the app's client
    /// credentials in the environment (as CI would set them).
    pub fn with_env_credentials(extra: u64) -> Self {
        let mut s = Self::signed_out(extra);
        s.env
            .push(("CARTHOOKS_CLIENT_ID".into(), DEFAULT_CLIENT_ID.into()));
        s.env.push((
            "CARTHOOKS_CLIENT_SECRET".into(),
            DEFAULT_CLIENT_SECRET.into(),
        ));
        s
    }

    /// The mock, the API URL, and no credentials at all.
    pub fn signed_out(extra: u64) -> Self {
        let server = MockServer::start().expect("the fake Carthooks starts");
        if extra > 0 {
            server.state().seed_items(APP, COLL, extra);
        }
        let config_dir = scratch("config");
        let env = vec![
            ("CARTHOOKS_API_URL".into(), server.url().to_owned()),
            (
                "CARTHOOKS_CONFIG_DIR".into(),
                config_dir.display().to_string(),
            ),
            // The tests' machine may have a keyring; the file path is the
            // one every machine can run, and the one that must ask first.
            ("CARTHOOKS_KEYRING".into(), "off".into()),
        ];
        Self {
            server,
            config_dir,
            env,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        for name in CLEARED {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `carthooks ARGS` to its end, stdout and stderr piped.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .expect("the carthooks binary runs")
            .into()
    }

    /// … with `stdin` as its input.
    pub fn run_with_input(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the carthooks binary runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin written");
        child.wait_with_output().expect("it ends").into()
    }

    /// Starts `carthooks ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the carthooks binary runs")
    }

    /// Every secret the CLI could have shown: the client secret, each
    /// bearer token the server saw, each token in the config directory.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![DEFAULT_CLIENT_SECRET.to_owned()];
        for request in self.server.state().log() {
            if let Some(bearer) = request
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
            {
                secrets.push(bearer.to_owned());
            }
        }
        let tokens = self.config_dir.join("tokens");
        for entry in std::fs::read_dir(&tokens).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                for key in ["access_token", "refresh_token"] {
                    if let Some(s) = v[key].as_str() {
                        secrets.push(s.to_owned());
                    }
                }
            }
        }
        secrets.sort();
        secrets.dedup();
        secrets
    }
}

/// Asserts that none of `secrets` is in any of `runs`' output.
pub fn assert_no_secret(secrets: &[String], runs: &[&Run]) {
    assert!(secrets.len() > 1, "the test saw tokens to look for");
    for run in runs {
        for secret in secrets {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "a secret was printed: {run:?}"
            );
        }
    }
}

/// `kill -INT pid`: what Ctrl-C sends.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -INT failed");
}

/// Whether `program` is on `PATH`.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian's `packages` with apt-get when this runs as root (as CI
/// and fresh machines do) and any of `programs` is missing; whether they
/// are all there then.
pub fn have_or_install(programs: &[&str], packages: &[&str]) -> bool {
    if programs.iter().all(|p| have(p)) {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        eprintln!("installing Debian's {} for the tests", packages.join(", "));
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let mut install = vec!["install", "-y", "-qq"];
        install.extend(packages);
        let _ = apt(&["update", "-qq"]) && apt(&install);
    }
    programs.iter().all(|p| have(p))
}

/// Polls `done` every 20 ms until it holds; fails after 60 s saying `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `carthooks login` in the browser as the tests run it: the mock's client,
/// the address printed, tokens in a file without asking; then `extra`.
pub fn browser_login<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "login",
        "--no-browser",
        "--client-id",
        carthooks_mock::DEFAULT_CLIENT_ID,
        "--insecure-storage",
    ];
    args.extend_from_slice(extra);
    args
}
