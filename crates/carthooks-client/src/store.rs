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
//!
//! # Many processes, one identity: the store as a coordination point
//!
//! With rotating refresh tokens, two processes that refresh with the same
//! refresh token get the whole token family revoked (reuse detection). A store
//! shared by processes that share an identity therefore coordinates them
//! ([`TokenStore::coordinates`]); the contract, for the file store here and
//! the Redis store of `carthooks-redis`:
//!
//! | call | does |
//! |---|---|
//! | [`load_stored`](TokenStore::load_stored)`(identity)` | the set with its version, or `None` — also when the set stored is another identity's: a client never adopts it |
//! | [`try_lease`](TokenStore::try_lease)`(holder, ttl)` | the refresh lease, if nobody else holds a live one; each grant carries a larger *fence* ([`next_stamp`]); [`Lapsed`](LeaseAttempt::Lapsed) when the lease before it was neither saved under nor given back |
//! | [`renew_lease`](TokenStore::renew_lease)`(lease, ttl)` | extends it while the token request is in flight; `false` once lost |
//! | [`save_fenced`](TokenStore::save_fenced)`(tokens, identity, lease)` | saves under a larger version ([`next_stamp`]) only if no newer lease was granted since: a holder whose lease lapsed never overwrites a newer set |
//! | [`release_lease`](TokenStore::release_lease)`(lease)` | gives it back early |
//!
//! Whose sets a store holds: the OAuth client id is the store's `identity`
//! (another client's set is never returned), and each set says whom it acts
//! for ([`TokenIdentity`](carthooks_core::TokenIdentity): the app, the app for
//! a user, a user). A client never adopts a set that acts for someone else
//! than its own does, and reports the mix-up: give each identity its own store
//! (a file, or a Redis namespace) — one per user for user tokens.
//!
//! A client about to refresh takes the lease and re-reads the store first: a
//! set newer than its own is adopted and nothing is sent. A client that finds
//! the lease held waits for the stored set to change (or the lease to lapse).
//! After a lapsed lease (a holder killed mid-refresh) the stored refresh token
//! may be spent: an app identity then obtains a new set with its client
//! credentials instead of presenting it (which would get the whole token
//! family revoked). A lease is one call's token flight: the client gives it
//! back as soon as that call no longer needs it.
//! Stores that do not coordinate (the trait's defaults) grant every lease and
//! save unconditionally: one process, as before.
//!
//! Versions and fences are *stamps*: the larger of the last one plus one and
//! the current time in microseconds ([`next_stamp`]). They grow like counters
//! while the store keeps its state, and still grow when it loses it (a Redis
//! restarted without persistence, a deleted file): the first set saved after
//! the loss is newer than any a client holds, so the fleet adopts it instead
//! of each process refreshing with a refresh token the others hold too.
//!
//! [`FileTokenStore`] keeps the lease in `{path}.lease` and serializes every
//! lease change and fenced save with an advisory lock (`flock`, through the
//! standard library's `File::lock`) on `{path}.lock`; the token file keeps its
//! format, with a `store` field (version, fence, identity) that older versions
//! of this SDK ignore. Times are the system clock's: the processes share a host.
//! Made [`with_vault`](FileTokenStore::with_vault), it keeps the same lease and
//! lock files but the token set (with its `store` field) in a [`TokenVault`],
//! such as an OS keyring entry: the `carthooks` command line's store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Which store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOperation {
    /// Reading the stored tokens when the client was built.
    Load,
    /// Saving a new token set.
    Save,
    /// Taking the refresh lease of a store shared by processes (the refresh
    /// then goes ahead without it).
    Lease,
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

impl StoreOperation {
    /// `load`, `save` or `lease`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOperation::Load => "load",
            StoreOperation::Save => "save",
            StoreOperation::Lease => "lease",
        }
    }
}

impl std::fmt::Display for TokenStoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.operation.as_str();
        write!(f, "token store {op} failed: {}", self.message)
    }
}

use carthooks_core::OAuthTokens;
/// The store's side of the lease protocol: defined by the core, whose driver
/// decides what they mean ([`carthooks_core::Lease`]).
pub use carthooks_core::{Lease, LeaseAttempt, SaveAttempt, Stored};

/// The version or fence after `last`: the larger of `last + 1` and the system
/// clock in microseconds since the Unix epoch. It grows like a counter, and
/// keeps growing across a store that lost its state (see the
/// [module docs](self)); stores of your own should make theirs this way, on
/// one clock (Redis: its `TIME`).
///
/// ```
/// let first = carthooks_client::next_stamp(0);
/// assert!(carthooks_client::next_stamp(first) > first);
/// assert_eq!(carthooks_client::next_stamp(u64::MAX - 1), u64::MAX);
/// ```
pub fn next_stamp(last: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    last.saturating_add(1).max(now)
}

/// Loads and saves a token set; a store shared by processes also coordinates
/// their refreshes (see the [module docs](self)).
pub trait TokenStore: Send + Sync + 'static {
    /// The stored tokens, `None` when nothing is stored yet.
    fn load(&self) -> std::io::Result<Option<OAuthTokens>>;
    /// Stores `tokens`, replacing what was stored.
    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()>;

    /// True when the store coordinates processes (versions, leases, fences).
    /// The default methods below make a store that does not.
    fn coordinates(&self) -> bool {
        false
    }

    /// The stored set with its version, unless it belongs to another
    /// `identity`. Default: [`load`](Self::load), version 0.
    fn load_stored(&self, identity: &str) -> std::io::Result<Option<Stored>> {
        let _ = identity;
        Ok(self.load()?.map(|tokens| Stored::new(tokens, 0)))
    }

    /// Takes the refresh lease for `ttl` unless someone else holds a live one;
    /// asked again by the holder of a live lease, extends it (same fence).
    /// Default: always granted, fence 0.
    fn try_lease(&self, holder: &str, ttl: std::time::Duration) -> std::io::Result<LeaseAttempt> {
        let _ = ttl;
        Ok(LeaseAttempt::Granted(Lease::new(0, holder)))
    }

    /// Extends a lease still held for another `ttl`; `false` once it was lost.
    fn renew_lease(&self, lease: &Lease, ttl: std::time::Duration) -> std::io::Result<bool> {
        let _ = (lease, ttl);
        Ok(true)
    }

    /// Gives a lease back before its TTL runs out (nothing if it was lost).
    fn release_lease(&self, lease: &Lease) -> std::io::Result<()> {
        let _ = lease;
        Ok(())
    }

    /// Saves `tokens` as `identity`'s, unless a newer lease than `lease` was
    /// granted since. Default: [`save`](Self::save), version 0.
    fn save_fenced(
        &self,
        tokens: &OAuthTokens,
        identity: &str,
        lease: &Lease,
    ) -> std::io::Result<SaveAttempt> {
        let _ = (identity, lease);
        self.save(tokens)
            .map(|()| SaveAttempt::Saved { version: 0 })
    }
}

/// A shared handle is a store: every method, the coordinating ones included,
/// goes to the store it points to (so `Arc<dyn TokenStore>` can be handed to
/// [`ClientBuilder::token_store`](crate::ClientBuilder::token_store) and kept).
impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        (**self).load()
    }
    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        (**self).save(tokens)
    }
    fn coordinates(&self) -> bool {
        (**self).coordinates()
    }
    fn load_stored(&self, identity: &str) -> std::io::Result<Option<Stored>> {
        (**self).load_stored(identity)
    }
    fn try_lease(&self, holder: &str, ttl: std::time::Duration) -> std::io::Result<LeaseAttempt> {
        (**self).try_lease(holder, ttl)
    }
    fn renew_lease(&self, lease: &Lease, ttl: std::time::Duration) -> std::io::Result<bool> {
        (**self).renew_lease(lease, ttl)
    }
    fn release_lease(&self, lease: &Lease) -> std::io::Result<()> {
        (**self).release_lease(lease)
    }
    fn save_fenced(
        &self,
        tokens: &OAuthTokens,
        identity: &str,
        lease: &Lease,
    ) -> std::io::Result<SaveAttempt> {
        (**self).save_fenced(tokens, identity, lease)
    }
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
///
/// With [`with_vault`](Self::with_vault) the token set itself is kept
/// elsewhere (an OS keyring, say) and the files hold only the lease and its
/// lock: processes sharing the vault still refresh one at a time.
pub struct FileTokenStore {
    path: PathBuf,
    vault: Option<Box<dyn TokenVault>>,
}

impl std::fmt::Debug for FileTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokenStore")
            .field("path", &self.path)
            .field("vault", &self.vault.as_ref().map(|v| v.describe()))
            .finish()
    }
}

/// Where a [`FileTokenStore`] made [`with_vault`](FileTokenStore::with_vault)
/// keeps the token set's bytes (the JSON the token file would hold): an OS
/// keyring entry, an encrypted blob. Reads and writes happen under the
/// store's file lock, so a vault needs no locking of its own; a write must
/// replace the whole value at once.
pub trait TokenVault: Send + Sync + 'static {
    /// The bytes last written, `None` when nothing is kept yet.
    fn read(&self) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces what is kept with `bytes`.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()>;
    /// What it is, for messages and `Debug` (never a secret): "the OS keyring".
    fn describe(&self) -> String;
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
        Self {
            path: path.into(),
            vault: None,
        }
    }

    /// A store keeping the token set in `vault`, and the lease that
    /// coordinates processes in `{path}.lease` (locked with `{path}.lock`);
    /// nothing is written at `path` itself. An unreadable value in the vault
    /// is reported as for a file, and left where it is.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use carthooks_client::{FileTokenStore, TokenVault};
    ///
    /// struct Memory(Mutex<Option<Vec<u8>>>);
    /// impl TokenVault for Memory {
    ///     fn read(&self) -> std::io::Result<Option<Vec<u8>>> { Ok(self.0.lock().unwrap().clone()) }
    ///     fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
    ///         *self.0.lock().unwrap() = Some(bytes.to_vec());
    ///         Ok(())
    ///     }
    ///     fn describe(&self) -> String { "memory".into() }
    /// }
    /// let dir = std::env::temp_dir().join(format!("vault-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let store = FileTokenStore::with_vault(dir.join("tokens"), Memory(Mutex::new(None)));
    /// assert!(format!("{store:?}").contains("memory"));
    /// ```
    pub fn with_vault(path: impl Into<PathBuf>, vault: impl TokenVault) -> Self {
        Self {
            path: path.into(),
            vault: Some(Box::new(vault)),
        }
    }

    /// Where the tokens are kept (with a vault: the name its lease and lock
    /// files are made from).
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

/// The token file: the token set, and what a coordinating save adds.
#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    #[serde(flatten)]
    tokens: OAuthTokens,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<StoreMeta>,
}

/// `store` in the token file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct StoreMeta {
    version: u64,
    fence: u64,
    identity: String,
}

/// `{path}.lease`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LeaseFile {
    fence: u64,
    holder: String,
    /// Unix milliseconds.
    expires_at: u64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FileTokenStore {
    /// `{target}{suffix}`, next to the token file.
    fn sibling(target: &Path, suffix: &str) -> PathBuf {
        let mut name = target
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "tokens".into());
        name.push(suffix);
        target.with_file_name(name)
    }

    /// Runs `f` holding the exclusive advisory lock of `{path}.lock`: every
    /// lease change and fenced save of every process on this path is serial.
    fn locked<R>(
        &self,
        target: &Path,
        f: impl FnOnce() -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options.open(Self::sibling(target, ".lock"))?;
        lock.lock()?;
        let result = f();
        // Closing the file releases the lock too; unlock says so explicitly.
        let _ = lock.unlock();
        result
    }

    /// The token file, with what a coordinating save added; `None` when absent.
    fn read_disk(&self, target: &Path) -> std::io::Result<Option<OnDisk>> {
        let read = match &self.vault {
            Some(vault) => vault.read(),
            None => match std::fs::read(target) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        };
        let Some(bytes) = read? else {
            return Ok(None);
        };
        // The parse error is not passed on: it could quote the file's contents.
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            let what = if bytes.is_empty() {
                "is empty"
            } else {
                "does not hold a token set"
            };
            let (name, aside) = match &self.vault {
                Some(vault) => (vault.describe(), String::new()),
                None => (
                    self.path.display().to_string(),
                    match self.set_aside(target) {
                        Some(aside) => format!("; it was moved to {}", aside.display()),
                        None => String::new(),
                    },
                ),
            };
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name} {what}{aside}"),
            )
        })
    }

    /// Writes the token set's bytes: to the vault, or atomically to the file.
    fn write_tokens(&self, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
        match &self.vault {
            Some(vault) => vault.write(bytes),
            None => Self::write_atomically(target, bytes),
        }
    }

    /// The lease file; an absent or unreadable one (a crash mid-write) is no lease.
    fn read_lease(target: &Path) -> Option<LeaseFile> {
        let bytes = std::fs::read(Self::sibling(target, ".lease")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_lease(target: &Path, lease: &LeaseFile) -> std::io::Result<()> {
        let json = serde_json::to_vec(lease).map_err(std::io::Error::other)?;
        Self::write_atomically(&Self::sibling(target, ".lease"), &json)
    }

    /// Writes `bytes` to a new private temporary file, flushes it and renames
    /// it over `target`; then flushes the directory.
    fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let (temp, file) = {
            let mut tries = 0;
            loop {
                let temp = Self::temp_path(target);
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
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written.and_then(|()| std::fs::rename(&temp, target)) {
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

impl TokenStore for FileTokenStore {
    fn load(&self) -> std::io::Result<Option<OAuthTokens>> {
        Ok(self.read_disk(&self.target())?.map(|disk| disk.tokens))
    }

    fn save(&self, tokens: &OAuthTokens) -> std::io::Result<()> {
        let json = serde_json::to_vec(tokens).map_err(std::io::Error::other)?;
        self.write_tokens(&self.target(), &json)
    }

    fn coordinates(&self) -> bool {
        true
    }

    fn load_stored(&self, identity: &str) -> std::io::Result<Option<Stored>> {
        let Some(disk) = self.read_disk(&self.target())? else {
            return Ok(None);
        };
        match disk.store {
            // Another identity's set is never adopted.
            Some(meta) if meta.identity != identity => Ok(None),
            meta => Ok(Some(Stored::new(
                disk.tokens,
                meta.map_or(0, |m| m.version),
            ))),
        }
    }

    fn try_lease(&self, holder: &str, ttl: std::time::Duration) -> std::io::Result<LeaseAttempt> {
        let target = self.target();
        self.locked(&target, || {
            let now = unix_ms();
            let current = Self::read_lease(&target);
            if let Some(lease) = current.as_ref().filter(|l| l.expires_at > now) {
                if lease.holder != holder {
                    return Ok(LeaseAttempt::Held {
                        remaining: std::time::Duration::from_millis(lease.expires_at - now),
                    });
                }
                // Its holder asks again (a refresh was refused and a grant
                // follows): the same lease, extended.
                let fence = lease.fence;
                Self::write_lease(
                    &target,
                    &LeaseFile {
                        fence,
                        holder: holder.to_owned(),
                        expires_at: now.saturating_add(ttl.as_millis() as u64),
                    },
                )?;
                return Ok(LeaseAttempt::Granted(Lease::new(fence, holder)));
            }
            // Fences only grow: past the last lease's and the last save's.
            let saved_fence = match self.read_disk(&target) {
                Ok(disk) => disk.and_then(|d| d.store).map_or(0, |m| m.fence),
                Err(_) => 0,
            };
            // Given back, a lease's expiry is 0; saved under, the set has its
            // fence. Neither: its holder died or hung holding it.
            let lapsed = current
                .as_ref()
                .is_some_and(|l| l.expires_at != 0 && l.fence > saved_fence);
            let fence = next_stamp(current.map_or(0, |l| l.fence).max(saved_fence));
            Self::write_lease(
                &target,
                &LeaseFile {
                    fence,
                    holder: holder.to_owned(),
                    expires_at: now.saturating_add(ttl.as_millis() as u64),
                },
            )?;
            let lease = Lease::new(fence, holder);
            Ok(if lapsed {
                LeaseAttempt::Lapsed(lease)
            } else {
                LeaseAttempt::Granted(lease)
            })
        })
    }

    fn renew_lease(&self, lease: &Lease, ttl: std::time::Duration) -> std::io::Result<bool> {
        let target = self.target();
        self.locked(&target, || {
            // Still ours if nobody was granted a lease since, lapsed or not.
            match Self::read_lease(&target) {
                Some(current) if current.fence == lease.fence && current.holder == lease.holder => {
                    Self::write_lease(
                        &target,
                        &LeaseFile {
                            expires_at: unix_ms().saturating_add(ttl.as_millis() as u64),
                            ..current
                        },
                    )?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn release_lease(&self, lease: &Lease) -> std::io::Result<()> {
        let target = self.target();
        self.locked(&target, || match Self::read_lease(&target) {
            // Expired, not removed: the file keeps the last fence, so the next
            // lease's is larger still.
            Some(current) if current.fence == lease.fence && current.holder == lease.holder => {
                Self::write_lease(
                    &target,
                    &LeaseFile {
                        expires_at: 0,
                        ..current
                    },
                )
            }
            _ => Ok(()),
        })
    }

    fn save_fenced(
        &self,
        tokens: &OAuthTokens,
        identity: &str,
        lease: &Lease,
    ) -> std::io::Result<SaveAttempt> {
        let target = self.target();
        self.locked(&target, || {
            let leased = Self::read_lease(&target).map_or(0, |l| l.fence);
            let meta = self
                .read_disk(&target)
                .ok()
                .flatten()
                .and_then(|d| d.store)
                .unwrap_or_default();
            if leased > lease.fence || meta.fence > lease.fence {
                return Ok(SaveAttempt::Fenced);
            }
            let version = next_stamp(meta.version);
            let disk = OnDisk {
                tokens: tokens.clone(),
                store: Some(StoreMeta {
                    version,
                    fence: lease.fence,
                    identity: identity.to_owned(),
                }),
            };
            let json = serde_json::to_vec(&disk).map_err(std::io::Error::other)?;
            self.write_tokens(&target, &json)?;
            Ok(SaveAttempt::Saved { version })
        })
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

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("carthooks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_lease_at_a_time_and_each_grant_has_a_larger_fence() {
        let dir = scratch("lease");
        let (a, b) = (
            FileTokenStore::new(dir.join("t.json")),
            FileTokenStore::new(dir.join("t.json")),
        );
        let ttl = std::time::Duration::from_secs(30);
        let LeaseAttempt::Granted(first) = a.try_lease("a", ttl).unwrap() else {
            panic!("the first lease is granted");
        };
        let LeaseAttempt::Held { remaining } = b.try_lease("b", ttl).unwrap() else {
            panic!("a live lease is not granted twice");
        };
        assert!(remaining > std::time::Duration::from_secs(25));
        assert!(a.renew_lease(&first, ttl).unwrap());
        a.release_lease(&first).unwrap();
        let LeaseAttempt::Granted(second) = b.try_lease("b", ttl).unwrap() else {
            panic!("a released lease is granted again");
        };
        assert!(second.fence > first.fence);
        assert!(
            !a.renew_lease(&first, ttl).unwrap(),
            "a lost lease stays lost"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_holder_whose_lease_lapsed_never_overwrites_a_newer_set() {
        let dir = scratch("fence");
        let store = FileTokenStore::new(dir.join("t.json"));
        let short = std::time::Duration::from_millis(50);
        let LeaseAttempt::Granted(slow) = store.try_lease("slow", short).unwrap() else {
            panic!("granted");
        };
        std::thread::sleep(std::time::Duration::from_millis(120));
        // The slow holder neither saved nor gave its lease back: the next is
        // told, since the stored refresh token may be spent.
        let LeaseAttempt::Lapsed(fast) = store.try_lease("fast", short * 100).unwrap() else {
            panic!("a lapsed lease is granted to the next, as lapsed");
        };
        let SaveAttempt::Saved { version } = store.save_fenced(&tokens(2), "id", &fast).unwrap()
        else {
            panic!("saved");
        };
        // The slow holder's answer arrives now: refused, the newer set stays.
        assert_eq!(
            store.save_fenced(&tokens(1), "id", &slow).unwrap(),
            SaveAttempt::Fenced
        );
        assert!(!store.renew_lease(&slow, short).unwrap());
        let stored = store.load_stored("id").unwrap().unwrap();
        assert_eq!(
            (stored.tokens.access_token.secret(), stored.version),
            ("at-2", version)
        );
        // Released, the next lease still outranks every save so far.
        store.release_lease(&fast).unwrap();
        let LeaseAttempt::Granted(next) = store.try_lease("next", short).unwrap() else {
            panic!("granted");
        };
        assert!(next.fence > fast.fence);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A vault shared by the stores of a test, as an OS keyring entry is
    /// shared by processes.
    #[derive(Clone, Default)]
    struct SharedVault(Arc<Mutex<Option<Vec<u8>>>>);

    impl TokenVault for SharedVault {
        fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
            *self.0.lock().unwrap() = Some(bytes.to_vec());
            Ok(())
        }
        fn describe(&self) -> String {
            "the test's vault".into()
        }
    }

    #[test]
    fn a_vault_keeps_the_set_and_the_files_keep_only_the_lease() {
        let dir = scratch("vault");
        let vault = SharedVault::default();
        let (a, b) = (
            FileTokenStore::with_vault(dir.join("t.json"), vault.clone()),
            FileTokenStore::with_vault(dir.join("t.json"), vault.clone()),
        );
        let ttl = std::time::Duration::from_secs(30);
        let LeaseAttempt::Granted(lease) = a.try_lease("a", ttl).unwrap() else {
            panic!("granted");
        };
        assert!(matches!(
            b.try_lease("b", ttl).unwrap(),
            LeaseAttempt::Held { .. }
        ));
        let SaveAttempt::Saved { version } = a.save_fenced(&tokens(7), "id", &lease).unwrap()
        else {
            panic!("saved");
        };
        let stored = b.load_stored("id").unwrap().unwrap();
        assert_eq!(
            (stored.tokens.access_token.secret(), stored.version),
            ("at-7", version)
        );
        assert!(!dir.join("t.json").exists(), "no token file is written");
        assert!(
            vault
                .read()
                .unwrap()
                .unwrap()
                .windows(4)
                .any(|w| w == b"at-7"),
            "the set is in the vault"
        );
        // Garbage in the vault: reported by name, left where it is.
        vault.write(b"not json").unwrap();
        let e = b.load_stored("id").unwrap_err();
        assert!(e.to_string().contains("the test's vault"), "{e}");
        assert_eq!(vault.read().unwrap().as_deref(), Some(&b"not json"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_that_lost_its_files_still_hands_out_larger_versions_and_fences() {
        let dir = scratch("lost");
        let store = FileTokenStore::new(dir.join("t.json"));
        let ttl = std::time::Duration::from_secs(5);
        let LeaseAttempt::Granted(before) = store.try_lease("a", ttl).unwrap() else {
            panic!("granted");
        };
        let SaveAttempt::Saved { version: old } =
            store.save_fenced(&tokens(1), "id", &before).unwrap()
        else {
            panic!("saved");
        };
        // Everything is deleted (a wiped volume): counting again from 1
        // would make every client's set look newer than the next one saved.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let LeaseAttempt::Granted(after) = store.try_lease("b", ttl).unwrap() else {
            panic!("granted");
        };
        assert!(after.fence > before.fence);
        let SaveAttempt::Saved { version: new } =
            store.save_fenced(&tokens(2), "id", &after).unwrap()
        else {
            panic!("saved");
        };
        assert!(new > old, "{new} > {old}");
        assert!(next_stamp(u64::MAX) == u64::MAX, "saturates, never wraps");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_identitys_set_is_never_adopted_and_old_readers_still_read() {
        let dir = scratch("identity");
        let store = FileTokenStore::new(dir.join("t.json"));
        let LeaseAttempt::Granted(lease) = store
            .try_lease("a", std::time::Duration::from_secs(5))
            .unwrap()
        else {
            panic!("granted");
        };
        let saved = store
            .save_fenced(&tokens(7), "client-1/app", &lease)
            .unwrap();
        assert!(store.load_stored("client-2/app").unwrap().is_none());
        let version = store.load_stored("client-1/app").unwrap().unwrap().version;
        assert_eq!(saved, SaveAttempt::Saved { version });
        // The file is still a token set to `load` (and to older versions).
        assert_eq!(store.load().unwrap().unwrap().access_token.secret(), "at-7");
        let plain: OAuthTokens =
            serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(plain.refresh_token.unwrap().secret(), "rt-7");
        // No secret in the lease file.
        let lease_file = std::fs::read_to_string(dir.join("t.json.lease")).unwrap();
        assert!(!lease_file.contains("at-7") && !lease_file.contains("rt-7"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
