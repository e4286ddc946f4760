//! What a person sees: `carthooks export` in a real terminal (tmux), its
//! screen read with `capture-pane` while it runs. The progress bar moves
//! (done / total, items/s, ETA), and the summary line is left at the end.
//! The captures are saved under `target/cli-screens/` for a reviewer.
//!
//! tmux is Debian's package (`.ci/run` installs it; so does this test when
//! it runs as root). A missing tmux fails the test: it never skips.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{APP, COLL, Setup, bin, scratch};

/// A tmux server of the test's own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server of its own, one session `t` (110×12) running
    /// `command` with `s`'s environment; `echo EXIT=$?` when it ends.
    fn start(s: &Setup, name: &str, command: &str) -> Self {
        assert!(
            support::have_or_install(&["tmux"], &["tmux"]),
            "this test needs tmux (Debian: apt-get install tmux)"
        );
        let script = scratch(name).join("run.sh");
        let mut text = String::from("#!/bin/sh\n");
        for (k, v) in &s.env {
            text.push_str(&format!("export {k}='{v}'\n"));
        }
        text.push_str(&format!("{command}\necho \"EXIT=$?\"\nsleep 120\n"));
        std::fs::write(&script, text).unwrap();
        let tmux = Tmux {
            socket: format!("carthooks-cli-{name}-{}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "110",
            "-y",
            "12",
            &format!("sh '{}'", script.display()),
        ]);
        tmux
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen once it shows `needle` (fails after 60 s).
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never showed {needle:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `keys` and Enter, as a person would.
    fn type_line(&self, keys: &str) {
        self.run(&["send-keys", "-t", "t", "-l", keys]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn screens_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cli-screens");
    std::fs::create_dir_all(&dir).expect("screens dir");
    dir
}

#[test]
fn the_progress_bar_moves_in_a_terminal_and_the_summary_stays() {
    let s = Setup::with_env_credentials(2997);
    // About 3 s of export: 30 pages of 100, one at a time, 100 ms each.
    s.server.set_latency(Some(Duration::from_millis(100)));
    let file = scratch("terminal").join("items.ndjson");
    let tmux = Tmux::start(
        &s,
        "progress",
        &format!(
            "'{}' export {APP} {COLL} -o '{}' --concurrency 1",
            bin(),
            file.display()
        ),
    );
    let start = Instant::now();
    let mut screens: Vec<String> = Vec::new();
    let last = loop {
        let screen = tmux.screen();
        if screen.contains("EXIT=") {
            break screen;
        }
        if screens.last() != Some(&screen) && !screen.trim().is_empty() {
            screens.push(screen);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the export did not end: {screens:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let bars: Vec<&String> = screens
        .iter()
        .filter(|s| s.contains("/3,000 items") && s.contains("ETA"))
        .collect();
    let mut record = String::new();
    for (i, screen) in screens.iter().enumerate() {
        record.push_str(&format!("--- capture {i}\n{}\n", screen.trim_end()));
    }
    record.push_str(&format!("--- at the end\n{}\n", last.trim_end()));
    std::fs::write(screens_dir().join("export-progress.txt"), &record).unwrap();
    assert!(
        bars.len() >= 2,
        "the bar was seen at least twice:\n{record}"
    );
    let position = |screen: &str| -> u64 {
        let at = screen.find("/3,000 items").expect("a bar");
        let digits: String = screen[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse().unwrap_or(0)
    };
    let first = position(bars[0]);
    let later = position(bars[bars.len() - 1]);
    assert!(
        later > first,
        "the bar moved: {first} then {later}\n{record}"
    );
    assert!(
        last.contains("Exported 3000 items") && last.contains("EXIT=0"),
        "the summary line stays:\n{last}"
    );
    assert!(
        !last.contains("ETA"),
        "the bar is cleared at the end:\n{last}"
    );
}

#[test]
fn without_a_keyring_login_asks_first_and_the_secret_is_not_echoed() {
    let s = Setup::signed_out(0);
    let tokens = s.config_dir.join("tokens/default.json");
    let login = format!(
        "'{}' login --client-credentials --client-id {}",
        bin(),
        carthooks_mock::DEFAULT_CLIENT_ID
    );
    // The hidden prompt, then the question; "n": nothing is written.
    let tmux = Tmux::start(&s, "ask-no", &login);
    tmux.wait_for("Client secret:");
    tmux.type_line(carthooks_mock::DEFAULT_CLIENT_SECRET);
    let asked = tmux.wait_for("Keep them there? [y/N]");
    assert!(
        !asked.contains(carthooks_mock::DEFAULT_CLIENT_SECRET),
        "the secret is not echoed:\n{asked}"
    );
    assert!(!tokens.exists(), "nothing written before the answer");
    assert_eq!(s.server.counters().grant("client_credentials"), 0);
    tmux.type_line("n");
    let refused = tmux.wait_for("EXIT=");
    assert!(
        refused.contains("EXIT=1") && refused.contains("nothing was written"),
        "{refused}"
    );
    assert!(!tokens.exists(), "a no leaves nothing");
    drop(tmux);
    // "y": signed in, the file is there, the user's only.
    let tmux = Tmux::start(&s, "ask-yes", &login);
    tmux.wait_for("Client secret:");
    tmux.type_line(carthooks_mock::DEFAULT_CLIENT_SECRET);
    tmux.wait_for("Keep them there? [y/N]");
    tmux.type_line("y");
    let done = tmux.wait_for("EXIT=");
    std::fs::write(screens_dir().join("login-asks-first.txt"), &done).unwrap();
    assert!(
        done.contains("EXIT=0") && done.contains("Signed in"),
        "{done}"
    );
    assert!(
        !done.contains(carthooks_mock::DEFAULT_CLIENT_SECRET),
        "{done}"
    );
    assert!(tokens.exists());
}

#[test]
fn verbose_output_in_a_terminal_is_plain_lines() {
    let s = Setup::with_env_credentials(0);
    let tmux = Tmux::start(&s, "verbose", &format!("'{}' users me -v", bin()));
    let screen = tmux.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("carthooks.call{operation=\"me\""),
        "{screen}"
    );
    assert!(
        screen.contains("username"),
        "a table on a terminal: {screen}"
    );
    assert!(
        !screen.contains("tracing-subscriber"),
        "no warning of the logger's own:\n{screen}"
    );
}
