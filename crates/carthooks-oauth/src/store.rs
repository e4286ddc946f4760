//! Token persistence: where a client loads its tokens at start and saves every new
//! token set before using it.
//!
//! [`FileTokenStore`] writes atomically: the JSON goes to a new temporary file in
//! the same directory (mode 0600 on Unix), is flushed to disk, and is renamed over
//! the old file; the directory is then flushed too. A crash at any moment leaves
//! either the old or the new complete token set, never a mix. The file holds
//! `expires_at`, so a restarted client knows the token's true expiry.
//!
//! A failing save never loses the tokens: they stay in memory and in use, and the
//! failure is logged (with the `tracing` feature).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use carthooks_core::OAuthTokens;

/// Loads and saves a token set.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored tokens, `None` when nothing is stored yet.
    fn load(&self) -> std::io::Result<Option<OAuthTokens>>;
    /// Stores `tokens`, replacing what was stored.
    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()>;
}

/// Keeps the tokens in memory (for tests, and for sharing tokens between clients
/// of one process).
#[derive(Default)]
pub struct MemoryTokenStore(Mutex<Option<OAuthTokens>>);

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(tokens.clone());
        Ok(())
    }
}

/// Keeps the tokens in a JSON file, written atomically. See the [module docs](self).
#[derive(Debug)]
pub struct FileTokenStore {
    path: PathBuf,
    counter: AtomicU64,
}

impl FileTokenStore {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            counter: AtomicU64::new(0),
        }
    }

    /// Where the tokens are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "tokens".into());
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        self.path.with_file_name(name)
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // The parse error is not passed on: it could quote the file's contents.
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a token set", self.path.display()),
            )
        })
    }

    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        let json = serde_json::to_vec(tokens).map_err(std::io::Error::other)?;
        let temp = self.temp_path();
        let written = create_private(&temp).and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&temp, &self.path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        // Make the rename itself durable.
        #[cfg(unix)]
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carthooks_core::{AccessToken, RefreshToken};

    fn tokens(n: u64) -> OAuthTokens {
        OAuthTokens {
            access_token: AccessToken::new(format!("at-{n}")),
            refresh_token: Some(RefreshToken::new(format!("rt-{n}"))),
            token_type: "Bearer".into(),
            expires_at: Some(1_700_000_000 + n),
            scope: None,
        }
    }

    #[test]
    fn file_store_roundtrip_private_and_atomic() {
        let dir = std::env::temp_dir().join(format!("carthooks-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileTokenStore::new(dir.join("tokens.json"));
        assert!(store.load().unwrap().is_none());
        store.save(&tokens(1)).unwrap();
        store.save(&tokens(2)).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.access_token.secret(), "at-2");
        assert_eq!(back.expires_at, Some(1_700_000_002));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "tokens.json")
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left behind");
        std::fs::write(store.path(), b"{\"access_token\": \"at-secret-partial").unwrap();
        let e = store.load().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(!e.to_string().contains("at-secret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failing_save_reports_an_error() {
        let store = FileTokenStore::new("/nonexistent-dir-carthooks/tokens.json");
        assert!(store.save(&tokens(1)).is_err());
        let memory = MemoryTokenStore::new();
        memory.save(&tokens(3)).unwrap();
        assert_eq!(
            memory.load().unwrap().unwrap().access_token.secret(),
            "at-3"
        );
    }
}
