//! `cargo xtask <task>`: the project's own automation, run from anywhere in the
//! workspace.
//!
//! - `deps` — checks the dependency rules of DESIGN.md: `carthooks-core` pulls no
//!   runtime, socket or TLS crate; the ureq-only facade pulls no tokio, hyper or
//!   reqwest.
//! - `ci` — what `.ci/run` runs: fmt check, clippy with `-D warnings`, `deps`, tests.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "deps" => deps(),
        "ci" => ci(),
        _ => {
            eprintln!("usage: cargo xtask <deps|ci>");
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
