//! Profiles: a TOML file in the platform's configuration directory
//! (`$XDG_CONFIG_HOME/carthooks/config.toml`, `~/.config/carthooks/…`;
//! `CARTHOOKS_CONFIG_DIR` overrides the directory).
//!
//! ```toml
//! default_profile = "work"
//!
//! [profiles.work]
//! api_url = "https://api.carthooks.com"
//! authorize_url = "https://carthooks.com/oauth/authorize"   # optional
//! client_id = "my-cli-client"
//! app = 3883548539          # default APP for commands that take one
//! collection = 3883549661   # default COLL
//! storage = "keyring"       # set by `login`: "keyring" or "file"
//! ```
//!
//! Nothing secret is in this file: tokens and client secrets are in the OS
//! keyring, or (asked first) in `tokens/{profile}.json` and
//! `tokens/{profile}.secret` beside it, mode 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used without `--profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// By name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One profile.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// How the profile signed in: "browser" or "client-credentials".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Where `login` put the profile's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// The OS keyring.
    Keyring,
    /// Files readable only by the user.
    File,
}

/// The configuration directory and what it holds.
#[derive(Debug)]
pub struct Config {
    pub dir: PathBuf,
    pub file: ConfigFile,
}

/// The default API.
pub const DEFAULT_API_URL: &str = "https://api.carthooks.com";

impl Config {
    /// Reads the config (an absent file is an empty config; a broken one an error).
    pub fn load() -> Result<Self, CliError> {
        let dir = config_dir()?;
        let path = dir.join("config.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::Config(format!(
                    "{} is not a valid config: {}",
                    path.display(),
                    e.message()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => {
                return Err(CliError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self { dir, file })
    }

    /// The profile's name: `--profile`, else the config's default, else `default`.
    pub fn profile_name(&self, asked: Option<&str>) -> String {
        asked
            .map(str::to_owned)
            .or_else(|| self.file.default_profile.clone())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The profile (empty when not configured).
    pub fn profile(&self, name: &str) -> Profile {
        self.file.profiles.get(name).cloned().unwrap_or_default()
    }

    /// Saves `profile` as `name` (atomically: a temporary file renamed).
    pub fn save_profile(&mut self, name: &str, profile: Profile) -> Result<(), CliError> {
        self.file.profiles.insert(name.to_owned(), profile);
        self.write()
    }

    /// Where a profile's tokens go without a keyring (and its lease files always).
    pub fn token_path(&self, profile: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{profile}.json"))
    }

    /// Where a profile's client secret goes without a keyring.
    pub fn secret_path(&self, profile: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{profile}.secret"))
    }
}

/// The keys `carthooks config` sets, gets and unsets.
pub const KEYS: [&str; 6] = [
    "api_url",
    "authorize_url",
    "client_id",
    "app",
    "collection",
    "default_profile",
];

impl Config {
    /// `config set KEY VALUE` (`None`: unset) on profile `name`.
    pub fn set(&mut self, name: &str, key: &str, value: Option<&str>) -> Result<(), CliError> {
        let id = |v: Option<&str>| -> Result<Option<u64>, CliError> {
            v.map(|v| {
                v.parse::<u64>()
                    .map_err(|_| CliError::Usage(format!("{key} is an id: {v:?} is not one")))
            })
            .transpose()
        };
        let text = |v: Option<&str>| v.map(str::to_owned);
        if key == "default_profile" {
            self.file.default_profile = text(value);
            return self.write();
        }
        let mut profile = self.profile(name);
        match key {
            "api_url" => profile.api_url = text(value),
            "authorize_url" => profile.authorize_url = text(value),
            "client_id" => profile.client_id = text(value),
            "app" => profile.app = id(value)?,
            "collection" => profile.collection = id(value)?,
            _ => {
                return Err(CliError::Usage(format!(
                    "{key:?} is not a setting; the settings are {}",
                    KEYS.join(", ")
                )));
            }
        }
        self.save_profile(name, profile)
    }

    /// `config get KEY` on profile `name`.
    pub fn get(&self, name: &str, key: &str) -> Result<Option<String>, CliError> {
        let p = self.profile(name);
        Ok(match key {
            "default_profile" => self.file.default_profile.clone(),
            "api_url" => p.api_url,
            "authorize_url" => p.authorize_url,
            "client_id" => p.client_id,
            "app" => p.app.map(|v| v.to_string()),
            "collection" => p.collection.map(|v| v.to_string()),
            _ => {
                return Err(CliError::Usage(format!(
                    "{key:?} is not a setting; the settings are {}",
                    KEYS.join(", ")
                )));
            }
        })
    }

    fn write(&self) -> Result<(), CliError> {
        let text = toml::to_string_pretty(&self.file)
            .map_err(|e| CliError::Config(format!("cannot write the config: {e}")))?;
        write_private(&self.dir.join("config.toml"), text.as_bytes())
            .map_err(|e| CliError::Config(format!("cannot write the config: {e}")))
    }
}

fn config_dir() -> Result<PathBuf, CliError> {
    if let Some(dir) = std::env::var_os("CARTHOOKS_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    use etcetera::BaseStrategy as _;
    etcetera::choose_base_strategy()
        .map(|s| s.config_dir().join("carthooks"))
        .map_err(|e| {
            CliError::Config(format!(
                "cannot find a configuration directory ({e}); set CARTHOOKS_CONFIG_DIR"
            ))
        })
}

/// Writes `bytes` to `path` readable only by the user (a new temporary file,
/// renamed over `path`), making the directory (0700) if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Makes `dir` and its parents; a new `dir` is readable only by the user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
