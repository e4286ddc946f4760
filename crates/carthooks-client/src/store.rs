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
//! failure is reported by the client's `token_store_failure()` (and logged with
//! the `tracing` feature). A store that cannot be read at start (empty,
//! truncated or garbage file, a directory) does not stop the client: it starts
//! without stored tokens and reports it the same way; [`FileTokenStore`] first
//! renames such a file to `{name}.corrupt-{unix time}-{n}` so nothing is lost.
//!
//! Every write goes to a temporary file whose name is unique per write (process
//! id, a process-wide counter and a random number, created with `create_new`),
//! so two stores on one path — two clients in one process, or two processes —
//! never collide; the last rename wins. A store path that is a symbolic link is
//! written through: the link's target is replaced, the link stays.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Which store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOperation {
    /// Reading the stored tokens when the client was built.
    Load,
    /// Saving a new token set.
    Save,
}

/// The last failure of a client's [`TokenStore`], as reported by the clients'
/// `token_store_failure()`. The tokens themselves were kept in memory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenStoreFailure {
    /// What was being done.
    pub operation: StoreOperation,
    /// The I/O error's kind.
    pub kind: std::io::ErrorKind,
    /// The I/O error's message (the provided stores never quote file contents).
    pub message: String,
    /// How many store operations of this client have failed so far.
    pub failures: u64,
}

impl TokenStoreFailure {
    pub(crate) fn new(operation: StoreOperation, error: &std::io::Error, failures: u64) -> Self {
        Self {
            operation,
            kind: error.kind(),
            message: error.to_string(),
            failures,
        }
    }
}

impl std::fmt::Display for TokenStoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.operation {
            StoreOperation::Load => "load",
            StoreOperation::Save => "save",
        };
        write!(f, "token store {op} failed: {}", self.message)
    }
}

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
}

/// Counts temporary files across every store of the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(TEMP_COUNTER.load(Ordering::Relaxed));
    h.finish()
}

impl FileTokenStore {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the tokens are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file actually written: the path, or what its symbolic links point to.
    fn target(&self) -> PathBuf {
        let mut path = self.path.clone();
        for _ in 0..40 {
            match std::fs::read_link(&path) {
                Ok(link) if link.is_absolute() => path = link,
                Ok(link) => {
                    path = path
                        .parent()
                        .map_or_else(|| link.clone(), |dir| dir.join(&link));
                }
                Err(_) => break,
            }
        }
        path
    }

    /// A name next to `target` that no other write uses.
    fn temp_path(target: &Path) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = target
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "tokens".into());
        name.push(format!(
            ".{}.{n}.{:016x}.tmp",
            std::process::id(),
            random_u64()
        ));
        target.with_file_name(name)
    }

    /// Renames an unreadable token file aside; returns the new name.
    fn set_aside(&self, target: &Path) -> Option<PathBuf> {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut name = target.file_name()?.to_os_string();
        name.push(format!(
            ".corrupt-{unix}-{}",
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let aside = target.with_file_name(name);
        std::fs::rename(target, &aside).ok().map(|()| aside)
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
        let target = self.target();
        let bytes = match std::fs::read(&target) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // The parse error is not passed on: it could quote the file's contents.
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            let what = if bytes.is_empty() {
                "is empty"
            } else {
                "does not hold a token set"
            };
            let aside = match self.set_aside(&target) {
                Some(aside) => format!("; it was moved to {}", aside.display()),
                None => String::new(),
            };
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} {what}{aside}", self.path.display()),
            )
        })
    }

    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        let json = serde_json::to_vec(tokens).map_err(std::io::Error::other)?;
        let target = self.target();
        let (temp, file) = {
            let mut tries = 0;
            loop {
                let temp = Self::temp_path(&target);
                match create_private(&temp) {
                    Ok(file) => break (temp, file),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => {
                        tries += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let written = (|| {
            let mut file = file;
            file.write_all(&json)?;
            file.sync_all()
        })();
        if let Err(e) = written.and_then(|()| std::fs::rename(&temp, &target)) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        // Make the rename itself durable.
        #[cfg(unix)]
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
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
        let mut tokens = OAuthTokens::from_access_token(AccessToken::new(format!("at-{n}")));
        tokens.refresh_token = Some(RefreshToken::new(format!("rt-{n}")));
        tokens.expires_at = Some(1_700_000_000 + n);
        tokens.scope = None;
        tokens
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
        // The bad file was moved aside, not lost; the store starts empty.
        assert!(e.to_string().contains(".corrupt-"), "{e}");
        assert!(store.load().unwrap().is_none());
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        let kept = std::fs::read(dir.join(&aside[0])).unwrap();
        assert!(kept.starts_with(b"{\"access_token\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_path_is_written_through() {
        let dir = std::env::temp_dir().join(format!("carthooks-store-link-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real")).unwrap();
        let target = dir.join("real/tokens.json");
        let link = dir.join("tokens.json");
        std::os::unix::fs::symlink("real/tokens.json", &link).unwrap();
        let store = FileTokenStore::new(&link);
        store.save(&tokens(1)).unwrap();
        store.save(&tokens(2)).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let back: OAuthTokens = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
        assert_eq!(back.access_token.secret(), "at-2");
        assert_eq!(store.load().unwrap().unwrap().access_token.secret(), "at-2");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_stores_on_one_path_never_collide() {
        let dir = std::env::temp_dir().join(format!("carthooks-store-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.json");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = FileTokenStore::new(&path);
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| store.save(&tokens(t * 1000 + i)).is_ok())
                        .filter(|ok| !ok)
                        .count()
                })
            })
            .collect();
        let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(failed, 0, "no save failed because another writer exists");
        assert!(FileTokenStore::new(&path).load().unwrap().is_some());
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
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
