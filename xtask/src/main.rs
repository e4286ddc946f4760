//! `cargo xtask <task>`: the project's own automation, run from anywhere in the
//! workspace.
//!
//! - `deps` — checks the dependency rules of DESIGN.md: `carthooks-core` pulls no
//!   runtime, socket or TLS crate; the ureq-only facade pulls no tokio, hyper or
//!   reqwest.
//! - `ci` — what `.ci/run` runs: fmt check, clippy with `-D warnings`, `deps`, tests.
//! - `fuzz [SECONDS]` — runs each libFuzzer target in `fuzz/` for SECONDS (default
//!   60), installing cargo-fuzz if missing; prints executions and time per target.
//!   Works on a stable toolchain through `RUSTC_BOOTSTRAP=1`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "deps" => deps(),
        "ci" => ci(),
        "fuzz" => fuzz(std::env::args().nth(2)),
        _ => {
            eprintln!("usage: cargo xtask <deps|ci|fuzz [SECONDS]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> Result<(), String> {
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed", args.join(" ")))
    }
}

fn tree(args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut crates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    crates.sort();
    crates.dedup();
    Ok(crates)
}

fn forbid(what: &str, args: &[&str], banned: &[&str]) -> Result<(), String> {
    let crates = tree(args)?;
    let found: Vec<&String> = crates
        .iter()
        .filter(|c| banned.contains(&c.as_str()))
        .collect();
    if found.is_empty() {
        println!(
            "ok: {what} ({} crates) has none of {}",
            crates.len(),
            banned.join(", ")
        );
        Ok(())
    } else {
        Err(format!("{what} pulls {found:?}"))
    }
}

fn deps() -> Result<(), String> {
    forbid(
        "carthooks-core",
        &["-p", "carthooks-core"],
        &[
            "tokio",
            "hyper",
            "reqwest",
            "ureq",
            "rustls",
            "mio",
            "socket2",
            "async-std",
        ],
    )?;
    forbid(
        "carthooks (ureq only)",
        &[
            "-p",
            "carthooks",
            "--no-default-features",
            "--features",
            "ureq",
        ],
        &["tokio", "hyper", "hyper-util", "reqwest"],
    )?;
    forbid(
        "carthooks (default)",
        &["-p", "carthooks"],
        &[
            "aws-lc-rs",
            "aws-lc-sys",
            "openssl",
            "openssl-sys",
            "native-tls",
        ],
    )
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    deps()?;
    cargo(&["test", "--locked", "--workspace"])
}

const FUZZ_TARGETS: &[&str] = &["envelope", "token", "urls"];

fn fuzz(seconds: Option<String>) -> Result<(), String> {
    let seconds: u64 = match seconds {
        None => 60,
        Some(s) => s
            .parse()
            .map_err(|_| format!("SECONDS must be a number, not {s:?}"))?,
    };
    let have_fuzz = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_fuzz {
        cargo(&["install", "--locked", "cargo-fuzz"])?;
    }
    let dir = root().join("fuzz");
    let mut summary = Vec::new();
    for target in FUZZ_TARGETS {
        println!("$ cargo fuzz run {target} -- -max_total_time={seconds}");
        let out = Command::new(env!("CARGO"))
            .args([
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            eprintln!("{log}");
            return Err(format!(
                "fuzz target {target} failed (see the artifact above)"
            ));
        }
        // libFuzzer ends with "Done N runs in S second(s)".
        let done = log
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("(no summary line)")
            .to_owned();
        summary.push(format!("{target}: {done}"));
    }
    println!("\nfuzz summary ({seconds} s per target):");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}
