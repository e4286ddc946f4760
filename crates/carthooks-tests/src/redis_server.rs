//! A real `redis-server` for the Redis store's tests: started on a free
//! loopback port with persistence off, stopped when dropped. `.ci/run` installs
//! the Debian package, and so does the first test that finds it missing when
//! it runs as root; a server that cannot start fails the test and says why.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Installs Debian's `redis-server` with apt-get, once per process, when it is
/// not on the `PATH` and this runs as root (as CI and fresh machines do).
fn install_if_missing() {
    static TRIED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut tried = TRIED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let found = || {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    };
    if *tried || found() {
        return;
    }
    *tried = true;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        eprintln!("installing Debian's redis-server for the Redis store's tests");
        for args in [
            &["update", "-qq"][..],
            &["install", "-y", "-qq", "redis-server"],
        ] {
            let _ = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port (a few tries: a probed port can be taken).
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("no free loopback port")
                .port();
            if let Some(child) = Self::spawn(port) {
                return Self {
                    child: Some(child),
                    port,
                };
            }
        }
        panic!("redis-server did not start in 5 tries");
    }

    fn spawn(port: u16) -> Option<Child> {
        install_if_missing();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}); install the Debian package redis-server")
            });
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return None; // the port was taken meanwhile
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL): every key is gone, as after a crash
    /// without persistence.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            if let Some(child) = Self::spawn(self.port) {
                self.child = Some(child);
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not come back on its port"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
