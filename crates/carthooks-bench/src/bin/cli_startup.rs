//! Start-up cost of the command line: `carthooks items get APP COLL ITEM -o
//! json` from start to exit beside the smallest SDK program making the same
//! call (`get_item`: client from the environment, client-credentials token,
//! one `get_item`, JSON printed), both release builds, against carthooks-mock
//! in this process. Run in turn, A B A B…, after a warm-up; medians and the
//! median of the pairwise ratios. `cli_startup [RUNS]` (default 30).

use std::process::{Command, Stdio};
use std::time::Instant;

use carthooks_bench::median;
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockServer,
};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let server = MockServer::start().expect("mock starts");
    let here = std::env::current_exe().expect("own path");
    let cli = here.with_file_name("carthooks");
    let minimal = here.with_file_name("get_item");
    for bin in [&cli, &minimal] {
        assert!(
            bin.exists(),
            "{} is missing: cargo build --release -p carthooks-cli -p carthooks-bench",
            bin.display()
        );
    }
    let (app, coll) = (
        DEFAULT_APP_ID.to_string(),
        DEFAULT_COLLECTION_ID.to_string(),
    );
    let config = std::env::temp_dir().join(format!("carthooks-startup-{}", std::process::id()));
    let time = |cli_side: bool| -> f64 {
        let mut cmd = if cli_side {
            let mut c = Command::new(&cli);
            c.args(["items", "get", &app, &coll, "2", "-o", "json"]);
            c
        } else {
            let mut c = Command::new(&minimal);
            c.args([&app, &coll, "2"]);
            c
        };
        cmd.env("CARTHOOKS_API_URL", server.url())
            .env("CARTHOOKS_CLIENT_ID", DEFAULT_CLIENT_ID)
            .env("CARTHOOKS_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .env("CARTHOOKS_CONFIG_DIR", &config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd.output().expect("runs");
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            out.status.success() && out.stdout.starts_with(b"{"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        seconds
    };
    time(true);
    time(false);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (x, y) = (time(true), time(false));
        ratios.push(x / y);
        a.push(x * 1e3);
        b.push(y * 1e3);
    }
    let (ma, mb) = (median(a), median(b));
    println!(
        "start to exit, one item read (token request + get), {runs} runs each, in turn (medians):"
    );
    println!("  carthooks items get -o json   {ma:>7.2} ms");
    println!("  minimal SDK program           {mb:>7.2} ms");
    println!(
        "  ratio {:.2}x (median of pairwise ratios {:.2}x)",
        ma / mb,
        median(ratios)
    );
}
