//! The durable token store. Constant Contact rotates refresh tokens: each
//! refresh returns a new one and kills every earlier one, so a new refresh
//! token that is not stored is a dead connection. The CONTROL message and the
//! rewritten `--config` file only help clients that keep them (Meltano
//! regenerates its config on every run; a killed process saves nothing), so
//! the connector also keeps the newest token set of every account it syncs in
//! one JSON file of its own, written before anything else, atomically
//! (temporary file + rename) and with mode 0600.
//!
//! Lineage: an account's entry is found by the hash of any refresh token a
//! config may hold for it — the one a run was configured with and every one
//! the connector received since — so a config that is updated after a
//! rotation (Airbyte, Singer write-back) and one that never is (Meltano) both
//! lead to the newest tokens. Hashes cover the token URL and client id too,
//! so two accounts or two servers never share an entry.
//!
//! Refreshes are serialised across processes by an exclusive `flock` on a
//! sibling `.lock` file (the data file is replaced by rename, so it cannot
//! carry the lock itself), through `fs4`: the maintained successor of `fs2`,
//! pure Rust over rustix (no `unsafe` here), and the same API as
//! `std::fs::File::lock`, which needs a newer Rust than this crate's MSRV.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Moves the token cache when the config has no `token_cache_path`.
pub const PATH_ENV: &str = "SOURCE_CONSTANT_CONTACT_TOKEN_CACHE";
const FORMAT_VERSION: u32 = 1;
/// How long a refresh waits for another process's refresh of the same cache.
/// That one takes seconds at most (three token requests of 60 s at worst).
const LOCK_WAIT: StdDuration = StdDuration::from_secs(300);
const LOCK_POLL: StdDuration = StdDuration::from_millis(50);
/// Constant Contact expires a refresh token unused for 180 days: an entry
/// not refreshed for longer holds a dead token and is dropped.
const KEEP_UNUSED: Duration = Duration::days(200);
/// Refresh-token hashes kept per entry: the first (what a never-updated
/// config holds) and the newest.
const MAX_KEYS: usize = 64;

/// The tokens one successful token response gave.
#[derive(Clone)]
pub struct TokenSet {
    pub refresh_token: Secret,
    pub access_token: Secret,
    pub expires: DateTime<Utc>,
}

/// The token cache of one OAuth client at one token endpoint.
pub struct TokenCache {
    path: PathBuf,
    /// The fallback under the temporary directory must be this user's alone.
    shared_parent: bool,
    /// Token URL and client id, hashed into every key.
    account: String,
}

/// Held while a process refreshes; the `flock` goes with the descriptor.
pub struct CacheLock {
    _file: File,
}

pub enum LockError {
    /// The lock file cannot be opened or locked at all (read-only disk…).
    Unavailable(String),
    /// Another process held the lock for longer than any refresh takes.
    TimedOut(String),
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    accounts: Vec<Entry>,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            version: FORMAT_VERSION,
            accounts: Vec::new(),
        }
    }
}

/// One account's newest tokens. No `Debug`: it holds secrets in the clear.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// Hashes of the refresh tokens of this lineage that a config may hold.
    keys: Vec<String>,
    refresh_token: String,
    access_token: String,
    token_expiry_date: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

enum ReadError {
    Io(String),
    /// Not a token cache of this version: moved aside before a write.
    Invalid(String),
}

impl ReadError {
    fn message(self) -> String {
        match self {
            ReadError::Io(message) | ReadError::Invalid(message) => message,
        }
    }
}

impl TokenCache {
    /// The cache at `configured` (the config's `token_cache_path`), else at
    /// `$SOURCE_CONSTANT_CONTACT_TOKEN_CACHE`, else the default location.
    pub fn new(configured: Option<&str>, token_url: &url::Url, client_id: &Secret) -> Self {
        let from_env = std::env::var_os(PATH_ENV).filter(|v| !v.is_empty());
        let (path, shared_parent) = match (configured, from_env) {
            (Some(path), _) => (PathBuf::from(path), false),
            (None, Some(path)) => (PathBuf::from(path), false),
            (None, None) => default_path(),
        };
        TokenCache {
            path,
            shared_parent,
            account: format!("{token_url}\0{}\0", client_id.expose()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key of the lineage `refresh_token` belongs to.
    pub fn key(&self, refresh_token: &Secret) -> String {
        let mut hash = Sha256::new();
        hash.update(b"source-constant-contact token cache v1\0");
        hash.update(self.account.as_bytes());
        hash.update(refresh_token.expose().as_bytes());
        hash.finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The newest token set of the lineage `key` belongs to, if cached.
    pub fn lookup(&self, key: &str) -> Result<Option<TokenSet>, String> {
        let file = self.read().map_err(ReadError::message)?;
        Ok(file
            .accounts
            .into_iter()
            .find(|entry| entry.keys.iter().any(|k| k == key))
            .map(|entry| TokenSet {
                refresh_token: Secret::new(entry.refresh_token),
                access_token: Secret::new(entry.access_token),
                expires: entry.token_expiry_date,
            }))
    }

    /// Makes `set` the newest of the lineage that any of `keys` belongs to,
    /// and adds `keys` to it. Returns a warning worth logging, if any.
    pub fn store(&self, keys: &[String], set: &TokenSet) -> Result<Option<String>, String> {
        self.ensure_parent()?;
        let mut warning = None;
        let mut file = match self.read() {
            Ok(file) => file,
            Err(ReadError::Io(message)) => return Err(message),
            Err(ReadError::Invalid(message)) => {
                let aside = sibling(&self.path, ".unreadable");
                fs::rename(&self.path, &aside)
                    .map_err(|e| format!("cannot move {} aside: {e}", self.path.display()))?;
                warning = Some(format!(
                    "{message}; moved it to {} and started a new token cache",
                    aside.display()
                ));
                CacheFile::default()
            }
        };
        let now = Utc::now();
        let mut lineage: Vec<String> = Vec::new();
        file.accounts.retain(|entry| {
            let ours = entry.keys.iter().any(|k| keys.contains(k));
            if ours {
                lineage.extend(entry.keys.iter().cloned());
            }
            !ours && now - entry.updated_at < KEEP_UNUSED
        });
        lineage.extend(keys.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        lineage.retain(|key| seen.insert(key.clone()));
        if lineage.len() > MAX_KEYS {
            lineage.drain(1..=lineage.len() - MAX_KEYS);
        }
        file.accounts.push(Entry {
            keys: lineage,
            refresh_token: set.refresh_token.expose().to_string(),
            access_token: set.access_token.expose().to_string(),
            token_expiry_date: set.expires,
            updated_at: now,
        });
        self.write(&file)?;
        Ok(warning)
    }

    /// Takes the exclusive lock that serialises refreshes of this cache's
    /// accounts across processes. `waiting` is called once if it is busy.
    pub async fn lock(&self, waiting: impl FnOnce()) -> Result<CacheLock, LockError> {
        let path = sibling(&self.path, ".lock");
        let unavailable = |e: std::io::Error| {
            LockError::Unavailable(format!("cannot lock {}: {e}", path.display()))
        };
        self.ensure_parent().map_err(LockError::Unavailable)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(unavailable)?;
        let deadline = Instant::now() + LOCK_WAIT;
        let mut waiting = Some(waiting);
        loop {
            // Fully qualified: newer Rust has an inherent `File::try_lock`.
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => return Ok(CacheLock { _file: file }),
                Err(fs4::TryLockError::Error(e)) => return Err(unavailable(e)),
                Err(fs4::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    if let Some(waiting) = waiting.take() {
                        waiting();
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    return Err(LockError::TimedOut(format!(
                        "another process has held the token cache lock {} for {} seconds; \
                         stop it (or remove the lock file if no sync is running) and retry",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    )))
                }
            }
        }
    }

    fn read(&self) -> Result<CacheFile, ReadError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
            Err(e) => {
                return Err(ReadError::Io(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )))
            }
        };
        let invalid = |why: String| {
            ReadError::Invalid(format!(
                "{} is not a token cache this connector reads ({why})",
                self.path.display()
            ))
        };
        let file: CacheFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(invalid(format!("format version {}", file.version)));
        }
        Ok(file)
    }

    /// Replaces the cache file whole (see `files::write_json_atomically`).
    fn write(&self, file: &CacheFile) -> Result<(), String> {
        crate::files::write_json_atomically(&self.path, file, 0o600)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn parent(&self) -> Option<&Path> {
        self.path.parent().filter(|p| !p.as_os_str().is_empty())
    }

    /// Creates the cache's directory (mode 0700); under the shared temporary
    /// directory, refuses one that another user could read or replace.
    fn ensure_parent(&self) -> Result<(), String> {
        let Some(parent) = self.parent() else {
            return Ok(());
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        if self.shared_parent {
            let meta = fs::symlink_metadata(parent)
                .map_err(|e| format!("cannot inspect {}: {e}", parent.display()))?;
            let uid = rustix::process::geteuid().as_raw();
            if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
                return Err(format!(
                    "{} is not a private directory of this user; set token_cache_path",
                    parent.display()
                ));
            }
        }
        Ok(())
    }
}

/// `$XDG_STATE_HOME/source-constant-contact/tokens.json`, else
/// `$HOME/.local/state/…`; without a usable home (containers run as a user
/// the image does not know get HOME=/), a directory of this user's own under
/// the temporary directory. The flag says the latter.
fn default_path() -> (PathBuf, bool) {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p != Path::new("/"))
    };
    let state_home = absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state")));
    match state_home {
        Some(dir) => (
            dir.join("source-constant-contact").join("tokens.json"),
            false,
        ),
        None => {
            let uid = rustix::process::geteuid().as_raw();
            let dir = std::env::temp_dir().join(format!("source-constant-contact-{uid}"));
            (dir.join("tokens.json"), true)
        }
    }
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> TokenCache {
        let url = url::Url::parse("https://auth.example/token").unwrap();
        let path = dir.join("sub").join("tokens.json");
        TokenCache::new(path.to_str(), &url, &Secret::new("client"))
    }

    fn set(refresh: &str) -> TokenSet {
        TokenSet {
            refresh_token: Secret::new(refresh),
            access_token: Secret::new(format!("access-{refresh}")),
            expires: Utc::now() + Duration::hours(1),
        }
    }

    #[test]
    fn every_config_of_a_lineage_finds_the_newest_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let key = |r: &str| cache.key(&Secret::new(r));
        assert!(cache.lookup(&key("r0")).unwrap().is_none());
        // r0 (configured) → r1, then a run configured with r0 again → r2.
        cache.store(&[key("r0"), key("r1")], &set("r1")).unwrap();
        cache
            .store(&[key("r0"), key("r1"), key("r2")], &set("r2"))
            .unwrap();
        for configured in ["r0", "r1", "r2"] {
            let found = cache.lookup(&key(configured)).unwrap().unwrap();
            assert_eq!(found.refresh_token.expose(), "r2", "{configured}");
            assert_eq!(found.access_token.expose(), "access-r2");
        }
        // Another account of the same client, and another client, are apart.
        cache.store(&[key("other")], &set("other")).unwrap();
        assert_eq!(
            cache.lookup(&key("r0")).unwrap().unwrap().refresh_token,
            Secret::new("r2")
        );
        let url = url::Url::parse("https://auth.example/token").unwrap();
        let elsewhere =
            TokenCache::new(cache.path().to_str(), &url, &Secret::new("another-client"));
        assert!(elsewhere
            .lookup(&elsewhere.key(&Secret::new("r0")))
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        cache
            .store(&[cache.key(&Secret::new("r"))], &set("r"))
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(cache.path().parent().unwrap()), 0o700);
        let text = fs::read_to_string(cache.path()).unwrap();
        assert!(!text.contains("client"), "the client id is only hashed");
        let names: Vec<_> = fs::read_dir(cache.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tokens.json"], "no temporary file left");
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        fs::create_dir_all(cache.path().parent().unwrap()).unwrap();
        fs::write(cache.path(), "{ torn").unwrap();
        let key = cache.key(&Secret::new("r"));
        assert!(cache.lookup(&key).is_err());
        let warning = cache
            .store(std::slice::from_ref(&key), &set("r"))
            .unwrap()
            .unwrap();
        assert!(warning.contains("tokens.json.unreadable"), "{warning}");
        assert_eq!(
            fs::read_to_string(sibling(cache.path(), ".unreadable")).unwrap(),
            "{ torn"
        );
        assert!(cache.lookup(&key).unwrap().is_some());
    }

    #[test]
    fn old_entries_are_pruned_and_keys_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let key = |r: String| cache.key(&Secret::new(r));
        cache.store(&[key("dead".into())], &set("dead")).unwrap();
        let mut file = cache.read().ok().unwrap();
        file.accounts[0].updated_at = Utc::now() - Duration::days(365);
        cache.write(&file).unwrap();
        for n in 0..100 {
            cache
                .store(
                    &[key("r0".into()), key(format!("r{n}"))],
                    &set(&n.to_string()),
                )
                .unwrap();
        }
        let file = cache.read().ok().unwrap();
        assert_eq!(file.accounts.len(), 1, "the dead lineage is gone");
        assert_eq!(file.accounts[0].keys.len(), MAX_KEYS);
        assert_eq!(file.accounts[0].keys[0], key("r0".into()));
        assert!(cache.lookup(&key("r99".into())).unwrap().is_some());
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_across_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let held = cache.lock(|| panic!("free")).await.ok().unwrap();
        let mut waited = false;
        let second =
            tokio::time::timeout(StdDuration::from_millis(300), cache.lock(|| waited = true)).await;
        assert!(
            second.is_err(),
            "a second lock waits while the first is held"
        );
        assert!(waited);
        drop(held);
        assert!(cache.lock(|| {}).await.is_ok());
    }
}
