//! Hardening item 12: a malformed environment variable is one clear `Config`
//! error naming the variable, on both backends. Environment variables belong
//! to the process, so each case runs this test binary again as a child with the
//! variable set (the test is its own child: it knows by `CHILD`).

use std::process::Command;

const CHILD: &str = "CARTHOOKS_ENV_ERRORS_CHILD";
const VARS: [&str; 4] = [
    "CARTHOOKS_API_URL",
    "CARTHOOKS_ACCESS_TOKEN",
    "CARTHOOKS_TIMEOUT",
    "CARTHOOKS_CLIENT_ID",
];

/// In the child: build both clients from the environment, and one without
/// `from_env()` (which must not read it), print each outcome.
fn child() {
    let reqwest = carthooks_reqwest::Client::builder()
        .from_env()
        .build()
        .map(drop);
    let ureq = carthooks_ureq::Client::builder()
        .from_env()
        .build()
        .map(drop);
    let plain = carthooks_reqwest::Client::builder().build().map(drop);
    for (name, outcome) in [("reqwest", reqwest), ("ureq", ureq), ("plain", plain)] {
        match outcome {
            Ok(()) => println!("{name}: built"),
            Err(e) => println!("{name}: {e}"),
        }
    }
}

#[test]
fn environment_errors_name_their_variable() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let cases = [
        (
            "CARTHOOKS_API_URL",
            "not-a-url",
            "invalid configuration: CARTHOOKS_API_URL: invalid base URL: missing scheme",
        ),
        (
            "CARTHOOKS_API_URL",
            "http://api.carthooks.example",
            "invalid configuration: CARTHOOKS_API_URL: refusing plain http to http://api.carthooks.example",
        ),
        (
            "CARTHOOKS_API_URL",
            "http://127.0.0.1:99999",
            "invalid configuration: CARTHOOKS_API_URL: invalid base URL http://127.0.0.1:99999",
        ),
        (
            "CARTHOOKS_TIMEOUT",
            "0",
            "invalid configuration: CARTHOOKS_TIMEOUT must be a number of seconds greater than 0 and at most 86400",
        ),
        (
            "CARTHOOKS_ACCESS_TOKEN",
            "not a header value",
            "invalid configuration: CARTHOOKS_ACCESS_TOKEN: access_token contains characters",
        ),
    ];
    for (var, value, expected) in cases {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([
            "environment_errors_name_their_variable",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        for v in VARS {
            command.env_remove(v);
        }
        let out = command.env(CHILD, "1").env(var, value).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for backend in ["reqwest", "ureq"] {
            let tag = format!("{backend}: ");
            let line = stdout
                .lines()
                .find_map(|l| l.find(&tag).map(|i| &l[i..]))
                .unwrap_or_else(|| panic!("no outcome for {backend}: {stdout}"));
            assert!(
                line.starts_with(&format!("{backend}: {expected}")),
                "{var}={value}: {line}"
            );
            assert_eq!(line.matches("invalid configuration").count(), 1, "{line}");
            if var == "CARTHOOKS_ACCESS_TOKEN" {
                assert!(!line.contains(value), "the token is not quoted: {line}");
            }
        }
        // Without from_env() the environment is not read at all.
        assert!(
            stdout.lines().any(|l| l.ends_with("plain: built")),
            "{var}={value} changed a client that did not ask for the environment: {stdout}"
        );
    }
}
