//! Where a profile's secrets live: its token set and its client secret.
//!
//! In the OS keyring when one works — macOS Keychain, Windows Credential
//! Manager, the Secret Service (GNOME Keyring, KWallet) elsewhere — probed
//! with a write, a read and a delete before `login` relies on it. Otherwise
//! in `tokens/{profile}.json` and `.secret` under the config directory, mode
//! 0600, and only after the user was told (or passed `--insecure-storage`):
//! never a silent fallback, never a warning after the write.
//!
//! Either way the token set is written by the SDK's `FileTokenStore` (with a
//! [`TokenVault`] for the keyring), so two commands running at once share the
//! tokens through its lease (`tokens/{profile}.json.lease`, `.lock`): one
//! refreshes, the other adopts the new set.
//!
//! `CARTHOOKS_KEYRING=off` skips the keyring (a machine whose keyring prompts
//! or hangs); the file is still only used as `login` was told.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use carthooks::{FileTokenStore, TokenVault};

use crate::config::{Config, Storage, write_private};

/// The keyring service name of every entry.
const SERVICE: &str = "carthooks-cli";

/// Why the keyring cannot be used, in a sentence (never a stored value).
fn keyring_error(e: &keyring::Error) -> String {
    match e {
        keyring::Error::PlatformFailure(p) | keyring::Error::NoStorageAccess(p) => p.to_string(),
        keyring::Error::NoDefaultStore => "no keyring service is running".to_owned(),
        keyring::Error::NoEntry => "no such entry".to_owned(),
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            "the entry does not hold text".to_owned()
        }
        _ => "the keyring refused".to_owned(),
    }
}

/// Whether the keyring works here: a probe entry written, read back and
/// deleted, within 5 s (a keyring that prompts or hangs does not count).
pub fn probe_keyring() -> Result<(), String> {
    if std::env::var("CARTHOOKS_KEYRING").is_ok_and(|v| v == "off" || v == "0") {
        return Err("CARTHOOKS_KEYRING=off".to_owned());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let entry = keyring::Entry::new(SERVICE, "probe").map_err(|e| keyring_error(&e))?;
            let value = format!("probe-{}", std::process::id());
            entry.set_password(&value).map_err(|e| keyring_error(&e))?;
            let back = entry.get_password().map_err(|e| keyring_error(&e))?;
            let _ = entry.delete_credential();
            if back == value {
                Ok(())
            } else {
                Err("the keyring did not give back what was written".to_owned())
            }
        })();
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| Err("the keyring did not answer within 5 s".to_owned()))
}

/// One keyring entry as the SDK's token vault.
struct KeyringVault {
    entry: keyring::Entry,
    profile: String,
}

impl TokenVault for KeyringVault {
    fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
        match self.entry.get_password() {
            Ok(text) => Ok(Some(text.into_bytes())),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(std::io::Error::other(keyring_error(&e))),
        }
    }

    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
        self.entry
            .set_password(text)
            .map_err(|e| std::io::Error::other(keyring_error(&e)))
    }

    fn describe(&self) -> String {
        format!("the OS keyring's entry for profile {}", self.profile)
    }
}

/// A profile's secrets, where `login` put them.
pub struct Secrets {
    pub storage: Storage,
    profile: String,
    token_path: PathBuf,
    secret_path: PathBuf,
}

impl Secrets {
    pub fn new(config: &Config, profile: &str, storage: Storage) -> Self {
        Self {
            storage,
            profile: profile.to_owned(),
            token_path: config.token_path(profile),
            secret_path: config.secret_path(profile),
        }
    }

    /// Where the tokens are, for people.
    pub fn describe(&self) -> String {
        match self.storage {
            Storage::Keyring => "the OS keyring".to_owned(),
            Storage::File => format!("{} (readable only by you)", self.token_path.display()),
        }
    }

    fn entry(&self, what: &str) -> std::io::Result<keyring::Entry> {
        keyring::Entry::new(SERVICE, &format!("{}:{what}", self.profile))
            .map_err(|e| std::io::Error::other(keyring_error(&e)))
    }

    /// The SDK store of the profile's token set (its lease files beside the
    /// token path in both cases).
    pub fn token_store(&self) -> std::io::Result<FileTokenStore> {
        if let Some(dir) = self.token_path.parent() {
            crate::config::create_private_dir(dir)?;
        }
        Ok(match self.storage {
            Storage::File => FileTokenStore::new(&self.token_path),
            Storage::Keyring => FileTokenStore::with_vault(
                &self.token_path,
                KeyringVault {
                    entry: self.entry("tokens")?,
                    profile: self.profile.clone(),
                },
            ),
        })
    }

    /// The client secret `login` kept, if any.
    pub fn client_secret(&self) -> std::io::Result<Option<String>> {
        match self.storage {
            Storage::File => match std::fs::read_to_string(&self.secret_path) {
                Ok(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Storage::Keyring => match self.entry("client-secret")?.get_password() {
                Ok(s) => Ok(Some(s)),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(std::io::Error::other(keyring_error(&e))),
            },
        }
    }

    /// Keeps the client secret.
    pub fn save_client_secret(&self, secret: &str) -> std::io::Result<()> {
        match self.storage {
            Storage::File => write_private(&self.secret_path, secret.as_bytes()),
            Storage::Keyring => self
                .entry("client-secret")?
                .set_password(secret)
                .map_err(|e| std::io::Error::other(keyring_error(&e))),
        }
    }

    /// Forgets the tokens and the client secret; whether anything was there.
    pub fn forget(&self) -> std::io::Result<bool> {
        let mut found = false;
        match self.storage {
            Storage::File => {
                for path in [&self.token_path, &self.secret_path] {
                    match std::fs::remove_file(path) {
                        Ok(()) => found = true,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Storage::Keyring => {
                for what in ["tokens", "client-secret"] {
                    match self.entry(what)?.delete_credential() {
                        Ok(()) => found = true,
                        Err(keyring::Error::NoEntry) => {}
                        Err(e) => return Err(std::io::Error::other(keyring_error(&e))),
                    }
                }
            }
        }
        for suffix in [".lease", ".lock"] {
            let mut name = self.token_path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
        Ok(found)
    }
}
