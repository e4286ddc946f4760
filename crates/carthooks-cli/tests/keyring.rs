//! The OS keyring path on Linux, for real: a D-Bus session bus and GNOME
//! Keyring's Secret Service (Debian's `dbus-daemon` and `gnome-keyring`,
//! installed by `.ci/run`, or by this test when it runs as root), started by
//! the test on a session of its own. `login` keeps the tokens and the client
//! secret there and nothing on disk but the lease; later commands read them
//! back; commands at once still renew a refused token once (the lease files
//! beside the keyring entry); `logout` removes them.
//!
//! Missing programs fail the test and say what to install: it never skips.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use support::{APP, COLL, Setup, assert_no_secret, scratch};

/// A session bus with an unlocked GNOME Keyring on it; both end on drop.
struct Keyring {
    bus_pid: u32,
    address: String,
    home: PathBuf,
}

impl Keyring {
    fn start() -> Self {
        assert!(
            support::have_or_install(
                &["dbus-daemon", "gnome-keyring-daemon"],
                &["dbus-daemon", "gnome-keyring"]
            ),
            "the keyring test needs dbus-daemon and gnome-keyring-daemon (Debian: apt-get install dbus-daemon gnome-keyring)"
        );
        let home = scratch("keyring-home");
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let out = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .stderr(Stdio::null())
            .output()
            .expect("dbus-daemon runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(address), Some(pid)) = (lines.next(), lines.next()) else {
            panic!("dbus-daemon did not say where it listens: {text:?}");
        };
        let keyring = Self {
            bus_pid: pid.trim().parse().expect("a pid"),
            address: address.trim().to_owned(),
            home,
        };
        use std::io::Write as _;
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .envs(keyring.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon runs");
        daemon
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-keyring-password")
            .unwrap();
        let status = daemon.wait().unwrap();
        assert!(status.success(), "gnome-keyring-daemon --unlock failed");
        keyring
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()),
            ("HOME".into(), self.home.display().to_string()),
            (
                "XDG_DATA_HOME".into(),
                self.home.join("data").display().to_string(),
            ),
            (
                "XDG_RUNTIME_DIR".into(),
                self.home.join("run").display().to_string(),
            ),
        ]
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        // The keyring daemon leaves with its bus.
        let _ = Command::new("kill").arg(self.bus_pid.to_string()).status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[test]
fn the_keyring_holds_the_secrets_and_commands_share_them() {
    let keyring = Keyring::start();
    let mut s = Setup::signed_out(0);
    s.env.retain(|(k, _)| k != "CARTHOOKS_KEYRING");
    s.env.extend(keyring.env());
    s.env.push((
        "CARTHOOKS_CLIENT_SECRET".into(),
        DEFAULT_CLIENT_SECRET.into(),
    ));
    let login = s
        .run(&[
            "login",
            "--client-credentials",
            "--client-id",
            DEFAULT_CLIENT_ID,
        ])
        .ok();
    assert!(
        login.stderr.contains("tokens kept in the OS keyring")
            && !login.stderr.contains("No OS keyring"),
        "{}",
        login.stderr
    );
    let tokens = s.config_dir.join("tokens");
    assert!(!tokens.join("default.json").exists(), "no token file");
    assert!(!tokens.join("default.secret").exists(), "no secret file");
    for entry in std::fs::read_dir(&tokens).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains("access_token") && !text.contains(DEFAULT_CLIENT_SECRET));
    }
    // From now on the secret comes from the keyring.
    s.env.retain(|(k, _)| k != "CARTHOOKS_CLIENT_SECRET");
    let status = s.run(&["auth", "status"]).ok();
    assert_eq!(status.json()["tokens_kept_in"], "the OS keyring");
    // A refused token, rotating refresh tokens with reuse detection: three
    // commands at once renew it once, through the lease beside the keyring.
    s.server.set_rotate_refresh_tokens(true);
    s.server.set_reuse_detection(true);
    s.server.revoke_access_tokens();
    let (app, coll) = (APP.to_string(), COLL.to_string());
    let children: Vec<_> = (0..3)
        .map(|_| s.spawn(&["items", "list", &app, &coll]))
        .collect();
    let mut runs = Vec::new();
    for child in children {
        let run: support::Run = child.wait_with_output().unwrap().into();
        runs.push(run.ok());
    }
    let c = s.server.counters();
    assert_eq!(
        c.grant("refresh_token") + c.grant("client_credentials"),
        2,
        "the login's token, then one renewal"
    );
    let logout = s.run(&["logout"]).ok();
    assert!(
        logout.stderr.contains("removed from the OS keyring"),
        "{}",
        logout.stderr
    );
    let after = s.run(&["users", "me"]);
    assert_eq!(after.code, 4, "{after:?}");
    let mut all: Vec<&support::Run> = runs.iter().collect();
    all.extend([&login, &status, &logout, &after]);
    assert_no_secret(&s.secrets(), &all);
}
