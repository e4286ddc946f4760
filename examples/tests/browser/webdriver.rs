//! Just enough of the W3C WebDriver protocol to drive headless Chromium
//! through `chromedriver`: sessions, navigation, elements, scripts, cookies
//! and screenshots, as blocking JSON calls over ureq (already the blocking
//! client's HTTP stack; a WebDriver crate would bring ~30 crates for the dozen
//! commands used here).
//!
//! Each [`Browser`] is its own WebDriver session with its own Chromium profile
//! directory: its own cookies, as a separate browser (context) would have.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

type Result<T> = std::result::Result<T, String>;

/// A running `chromedriver`, stopped on drop.
pub struct Driver {
    process: Child,
    url: String,
    agent: ureq::Agent,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Installs Debian's `chromium` and `chromium-driver` with apt-get when this
/// runs as root (as CI and fresh machines do); whether that worked.
fn install_chromium() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return false;
    }
    eprintln!("installing Debian's chromium and chromium-driver for the browser tests");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
}

/// `find_program`, installing Chromium once if it is missing.
fn find_or_install(env: &str, candidates: &[&str], name: &str) -> Result<PathBuf> {
    find_program(env, candidates, name).or_else(|e| {
        if install_chromium() {
            find_program(env, candidates, name)
        } else {
            Err(e)
        }
    })
}

/// The first of `candidates` that exists, or `name` found on `PATH`.
fn find_program(env: &str, candidates: &[&str], name: &str) -> Result<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Ok(PathBuf::from(path));
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{name} not found (set {env}, or install Debian's chromium and chromium-driver \
                 packages: `apt-get install chromium chromium-driver`; as root the tests do)"
            )
        })
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits until it is ready.
    pub fn start() -> Result<Self> {
        let chromedriver = find_or_install(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromedriver",
        )?;
        let chromium = find_or_install(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "chromium",
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut driver = Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            agent,
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = driver.call("GET", "/status", None)
                && status["ready"] == true
            {
                return Ok(driver);
            }
            if let Ok(Some(exit)) = driver.process.try_wait() {
                return Err(format!("chromedriver exited at start: {exit}"));
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command; the answer's `value`, or its error as text.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let answer = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut answer = answer.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = answer.status();
        let text = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let parsed: Value =
            serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {} {}: {}",
                status,
                value["error"].as_str().unwrap_or_default(),
                value["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(value)
    }

    /// A new headless Chromium with an empty profile in `profile`.
    pub fn browser(&self, profile: &Path) -> Result<Browser<'_>> {
        let _ = std::fs::remove_dir_all(profile);
        std::fs::create_dir_all(profile).map_err(|e| format!("{}: {e}", profile.display()))?;
        let args = [
            "--headless=new".to_owned(),
            // As root (CI), Chromium runs only without its sandbox.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            // The machine has no network: nothing in the background.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1000,760".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": self.chromium, "args": args},
        }}});
        let session = self.call("POST", "/session", Some(capabilities))?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {session}"))?
            .to_owned();
        Ok(Browser {
            driver: self,
            id,
            profile: profile.to_owned(),
        })
    }
}

/// One browser (a WebDriver session), closed on drop with its profile.
pub struct Browser<'d> {
    driver: &'d Driver,
    id: String,
    profile: PathBuf,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.id), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
    }

    /// Navigates to `url` and waits for the page (and its redirects) to load.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({"url": url})))
            .map(drop)
    }

    /// The title of the page shown.
    pub fn title(&self) -> Result<String> {
        Ok(self
            .call("GET", "/title", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Opens a new tab (same cookies) and returns its handle; the current
    /// tab stays the one commands go to until [`switch_to`](Self::switch_to).
    pub fn new_tab(&self) -> Result<String> {
        let tab = self.call("POST", "/window/new", Some(json!({"type": "tab"})))?;
        tab["handle"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no handle in {tab}"))
    }

    /// The handle of the tab commands go to.
    pub fn current_tab(&self) -> Result<String> {
        Ok(self
            .call("GET", "/window", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Sends the next commands to tab `handle`.
    pub fn switch_to(&self, handle: &str) -> Result<()> {
        self.call("POST", "/window", Some(json!({"handle": handle})))
            .map(drop)
    }

    /// Goes back one page in this tab's history.
    pub fn go_back(&self) -> Result<()> {
        self.call("POST", "/back", None).map(drop)
    }

    /// The address of the page shown.
    pub fn url(&self) -> Result<String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The element `css` selects, waiting up to 10 s for it to appear.
    fn element(&self, css: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            match found {
                Ok(element) => {
                    return element[ELEMENT]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("odd element reference {element}"));
                }
                Err(e) if Instant::now() > deadline => {
                    let url = self.url().unwrap_or_default();
                    return Err(format!("no `{css}` on {url}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The visible text of the element `css` selects.
    pub fn text(&self, css: &str) -> Result<String> {
        let element = self.element(css)?;
        let text = self.call("GET", &format!("/element/{element}/text"), None)?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// The visible texts of every element `css` selects (none: empty).
    pub fn texts(&self, css: &str) -> Result<Vec<String>> {
        let found = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        let mut out = Vec::new();
        for element in found.as_array().into_iter().flatten() {
            let id = element[ELEMENT].as_str().unwrap_or_default();
            let text = self.call("GET", &format!("/element/{id}/text"), None)?;
            out.push(text.as_str().unwrap_or_default().to_owned());
        }
        Ok(out)
    }

    /// Types `text` into the field `css` selects.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.element(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .map(drop)
    }

    /// Clicks the element `css` selects (waiting for a navigation it starts).
    pub fn click(&self, css: &str) -> Result<()> {
        let element = self.element(css)?;
        self.call("POST", &format!("/element/{element}/click"), None)
            .map(drop)
    }

    /// Runs `script` in the page; its return value.
    pub fn run_script(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The cookies the browser would send to the page shown.
    pub fn cookies(&self) -> Result<Vec<Value>> {
        Ok(self
            .call("GET", "/cookie", None)?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Sets a cookie for the page shown's site.
    pub fn add_cookie(&self, name: &str, value: &str) -> Result<()> {
        self.call(
            "POST",
            "/cookie",
            Some(json!({"cookie": {"name": name, "value": value, "path": "/"}})),
        )
        .map(drop)
    }

    /// Saves a PNG of the page shown to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let data = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}
