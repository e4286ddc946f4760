//! `cargo xtask <task>`: the project's own automation, run from anywhere in the
//! workspace.
//!
//! - `deps` — checks the dependency rules of DESIGN.md: `carthooks-core` pulls no
//!   runtime, socket or TLS crate; the ureq-only facade pulls no tokio, hyper or
//!   reqwest.
//! - `features` — `cargo check` of every feature combination that matters (the
//!   facade's backends one by one, together and none; the clients without
//!   `tracing`).
//! - `package` — `cargo package --list` of every published crate, checked for the
//!   files a crate needs and nothing it should not ship.
//! - `ci` — what `.ci/run` runs: fmt check, clippy with `-D warnings`, `deps`, tests.
//! - `bench [ROUNDS] [REQUESTS]` — the criterion hot-path benchmarks, then the
//!   end-to-end comparison with raw reqwest / ureq, the shared token stores
//!   the watcher, the bulk jobs and the command line (release builds).
//! - `build-cost` — dependency counts and clean-build times of the facade, default
//!   features and ureq only (in a scratch target directory).
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
        "bench" => bench(std::env::args().skip(2).collect()),
        "build-cost" => build_cost(),
        "features" => features(),
        "package" => package(),
        _ => {
            eprintln!(
                "usage: cargo xtask <deps|ci|bench [ROUNDS] [REQUESTS]|build-cost|fuzz [SECONDS]>"
            );
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
            // The watcher is opt-in (feature `watch`).
            "aws-sdk-sqs",
            "aws-config",
        ],
    )?;
    // One TLS stack for the AWS SDK too: rustls with ring, on hyper 1.
    forbid("carthooks-watch", &["-p", "carthooks-watch"], ONE_TLS_STACK)?;
    // Under Lambda: AWS's runtime client speaks plain HTTP to the Runtime
    // API, so still no second TLS stack.
    forbid(
        "carthooks-watch (lambda)",
        &["-p", "carthooks-watch", "--features", "lambda"],
        ONE_TLS_STACK,
    )?;
    // The command line: the same one TLS stack, and the keyring in pure
    // Rust (the Secret Service over zbus, not libdbus).
    let mut cli = ONE_TLS_STACK.to_vec();
    cli.push("libdbus-sys");
    forbid("carthooks-cli", &["-p", "carthooks-cli"], &cli)
}

/// Crates that would be a second TLS stack beside rustls with ring.
const ONE_TLS_STACK: &[&str] = &[
    "aws-lc-rs",
    "aws-lc-sys",
    "openssl",
    "openssl-sys",
    "native-tls",
    "hyper-tls",
];

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

fn bench(extra: Vec<String>) -> Result<(), String> {
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "carthooks-bench",
        "--bench",
        "hot_path",
    ])?;
    let mut e2e = vec!["e2e"];
    e2e.extend(extra.iter().map(String::as_str));
    bench_bin(&e2e)?;
    // The shared token stores: calls/s with a fresh token (the hot path must
    // not touch the store) and refresh latency with the lease against none.
    bench_bin(&["store"])?;
    // Many users in one process: memory per session, connections, and 1,000
    // sessions refreshing while they call.
    bench_bin(&["sessions"])?;
    // The watcher: its own cost against a hand-written aws-sdk-sqs loop, then
    // wall clock against the Python SDK's watcher on moto.
    bench_bin(&["watch", "20000", "5", "--python"])?;
    // Bulk jobs: the mock at 100,000 items, export against 20 ms a page (and
    // its memory), import against a 200/s rate limit.
    bench_bin(&["bulk", "mock", "100000"])?;
    bench_bin(&["bulk", "export", "100000", "3", "20"])?;
    bench_bin(&["bulk", "import", "10000", "200"])?;
    // The command line: `carthooks export` beside the library's export
    // stream, and `carthooks items get` start to exit beside the smallest
    // SDK program making the call (release builds of both).
    cargo(&[
        "build",
        "--locked",
        "--release",
        "-q",
        "-p",
        "carthooks-cli",
        "-p",
        "carthooks-bench",
        "--bin",
        "carthooks",
        "--bin",
        "get_item",
    ])?;
    bench_bin(&["bulk", "cli-export", "100000", "3", "20"])?;
    bench_bin(&["cli_startup", "30"])?;
    // Telemetry's cost: the SDK with `otel` and the batch exporter beside raw
    // reqwest with reqwest-tracing (last: it builds the client with `otel`).
    cargo(&[
        "run",
        "--locked",
        "--release",
        "-q",
        "-p",
        "carthooks-bench",
        "--features",
        "otel",
        "--bin",
        "otel",
    ])
}

/// `cargo run --release` of a carthooks-bench binary: `bin_and_args[0]`, with
/// the rest as its arguments.
fn bench_bin(bin_and_args: &[&str]) -> Result<(), String> {
    let (bin, args) = bin_and_args.split_first().ok_or("no binary named")?;
    let mut cmd = vec![
        "run",
        "--locked",
        "--release",
        "-q",
        "-p",
        "carthooks-bench",
        "--bin",
        bin,
        "--",
    ];
    cmd.extend(args);
    cargo(&cmd)
}

fn build_cost() -> Result<(), String> {
    let scratch = std::env::temp_dir().join(format!("carthooks-build-cost-{}", std::process::id()));
    let cases: [(&str, &[&str]); 2] = [
        ("default (reqwest)", &[]),
        (
            "ureq only",
            &["--no-default-features", "--features", "ureq"],
        ),
    ];
    let mut lines = Vec::new();
    for (name, features) in cases {
        let mut tree_args = vec!["-p", "carthooks"];
        tree_args.extend_from_slice(features);
        let deps = tree(&tree_args)?.len();
        let _ = std::fs::remove_dir_all(&scratch);
        let mut args = vec![
            "build",
            "--locked",
            "--release",
            "-q",
            "-p",
            "carthooks",
            "--target-dir",
        ];
        let dir = scratch.to_string_lossy().into_owned();
        args.push(&dir);
        args.extend_from_slice(features);
        let start = std::time::Instant::now();
        cargo(&args)?;
        let secs = start.elapsed().as_secs_f64();
        lines.push(format!("| {name} | {deps} | {secs:.0} s |"));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("\n| facade features | crates (normal deps, incl. ours) | clean release build |");
    println!("|---|---:|---:|");
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The feature combinations worth checking (an explicit list rather than a full
/// powerset: the facade has two features, the client crate one).
const FEATURE_SETS: &[(&str, &[&str])] = &[
    ("carthooks", &["--no-default-features"]),
    (
        "carthooks",
        &["--no-default-features", "--features", "reqwest"],
    ),
    (
        "carthooks",
        &["--no-default-features", "--features", "ureq"],
    ),
    ("carthooks", &["--all-features"]),
    (
        "carthooks",
        &["--no-default-features", "--features", "watch"],
    ),
    (
        "carthooks",
        &["--no-default-features", "--features", "ureq,tracing"],
    ),
    (
        "carthooks",
        &["--no-default-features", "--features", "ureq,otel"],
    ),
    ("carthooks-client", &["--no-default-features"]),
    ("carthooks-client", &[]),
    // The workspace's tests build the client with `otel` (carthooks-tests
    // needs it): these check it builds without, and alone.
    (
        "carthooks-client",
        &["--no-default-features", "--features", "otel"],
    ),
    ("carthooks-reqwest", &[]),
    ("carthooks-ureq", &[]),
    // The workspace's tests build the watcher with `otel` and `lambda`:
    // alone, and with `lambda` only.
    ("carthooks-watch", &[]),
    ("carthooks-watch", &["--features", "lambda"]),
    // What the benchmarks build: the suite's helpers without `otel`.
    ("carthooks-tests", &["--no-default-features"]),
    // The telemetry benchmark (`xtask bench`'s last step).
    ("carthooks-bench", &["--features", "otel", "--bins"]),
];

fn features() -> Result<(), String> {
    for (krate, flags) in FEATURE_SETS {
        let mut args = vec!["check", "--locked", "-q", "-p", krate];
        args.extend_from_slice(flags);
        cargo(&args)?;
    }
    Ok(())
}

const PUBLISHED: &[&str] = &[
    "carthooks-core",
    "carthooks-client",
    "carthooks-reqwest",
    "carthooks-ureq",
    "carthooks",
    "carthooks-mock",
    "carthooks-watch",
    "carthooks-redis",
    "carthooks-cli",
];

fn package() -> Result<(), String> {
    for krate in PUBLISHED {
        let out = Command::new(env!("CARGO"))
            .args([
                "package",
                "--list",
                "--allow-dirty",
                "--locked",
                "-p",
                krate,
            ])
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run cargo package: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo package --list -p {krate}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let files: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        // The command line is a binary.
        let entry = if *krate == "carthooks-cli" {
            "src/main.rs"
        } else {
            "src/lib.rs"
        };
        for needed in [
            "Cargo.toml",
            "README.md",
            entry,
            "LICENSE-MIT",
            "LICENSE-APACHE",
        ] {
            if !files.iter().any(|f| f == needed) {
                return Err(format!("{krate}: the package lacks {needed}"));
            }
        }
        if let Some(bad) = files
            .iter()
            .find(|f| f.starts_with("target/") || f.ends_with(".jsonl") || f.contains("fuzz/"))
        {
            return Err(format!("{krate}: the package should not ship {bad}"));
        }
        println!("ok: {krate} packages {} files", files.len());
    }
    Ok(())
}
