//! The key store (SPEC section 12): each conversation's data key, beside the
//! log on the same engine, never in the log, checkpoints or exports.
//!
//! [`KeyStore`] is the seam: a sled store keeps its keys in a directory of its
//! own ([`DirKeyStore`], `<store>/keys/`), a PostgreSQL log in a table of its
//! database (`PgKeyStore`, `postgres/keys.rs`). Both hold each key **wrapped**
//! ([`KeyWrap`], under a key derived from the server's secret) and know three
//! states per conversation ([`KeyState`]): no key, a live key, or destroyed (a
//! tombstone, so a destroyed key is never silently replaced by a new one).
//!
//! Durability: [`KeyStore::create`] returns only once the key is durable
//! (file fsynced and its directory fsynced; or the row committed), so the
//! caller appends the events sealed under it afterwards: no acknowledged event
//! ever needs a key that a crash could lose. [`KeyStore::destroy`] returns only
//! once the destruction is durable.
//!
//! Why not a sled tree. sled 0.34 is log-structured: `remove` appends a
//! tombstone, and the removed value's bytes stay in its `db` file until the
//! segment happens to be rewritten (checked: a value inserted, removed,
//! flushed, then 2,000 other writes and a reopen, is still found by a byte
//! search of `sled/db`). An auditor's byte search after an erasure would find
//! the wrapped key. So the sled engine keeps one small file per key, which
//! destruction overwrites in place with zeros, `fdatasync`s, truncates to
//! zero length (the tombstone) and fsyncs: on a filesystem that overwrites in
//! place (ext4, xfs) no byte of the key remains in the file's blocks. On a
//! copy-on-write filesystem (btrfs, ZFS) or below it (SSD wear levelling,
//! snapshots, backups) old blocks may survive; the wrap is the second line:
//! those bytes are useless without the server's secret. `docs/erasure.md`
//! says what this means for operators, and what the PostgreSQL engine keeps
//! (dead tuples until vacuum, WAL and base backups).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use backchannel_domain::events::Event;
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::{Content, MessageBody, Name, SealedValue};

use crate::crypt::{CryptError, DataKey, KeyWrap, WRAPPED_KEY_LEN};
use crate::engine::Log;
use crate::error::StorageError;
use crate::postgres::PgKeyStore;

/// The directory of a sled store that holds its keys.
pub const KEYS_DIR: &str = "keys";

/// What the key store holds for one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No key was ever created (a plaintext-era conversation, or unknown).
    Absent,
    Live(DataKey),
    /// The key was destroyed: the conversation was erased.
    Destroyed,
}

/// Why the key store failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("the key of conversation {0} was destroyed; no new key is made for it")]
    Destroyed(ConversationId),
    #[error("the stored key of conversation {conversation} is damaged or not ours: {source}")]
    Damaged {
        conversation: ConversationId,
        source: CryptError,
    },
    #[error("key store: {0}")]
    Crypt(#[from] CryptError),
    #[error("key store storage: {0}")]
    Storage(#[from] StorageError),
}

impl From<std::io::Error> for KeyStoreError {
    fn from(err: std::io::Error) -> Self {
        KeyStoreError::Storage(StorageError::from(err))
    }
}

/// The key store of one log, on its engine, with an in-memory cache of the
/// keys it has seen (live ones, and destructions, which are final). Cheap to
/// clone.
#[derive(Clone)]
pub struct KeyStore {
    engine: Arc<Engine>,
    /// `None`: destroyed. An absent key is not cached: another node may
    /// create it.
    cache: Arc<Mutex<HashMap<ConversationId, Option<DataKey>>>>,
}

enum Engine {
    Dir(DirKeyStore),
    /// With the runtime its client runs on, for the blocking reads of a
    /// replay.
    Pg(Box<PgKeyStore>, Option<tokio::runtime::Handle>),
    /// Keys given in a bundle (an auditor's `--keys` file): read-only.
    Bundle(HashMap<ConversationId, Option<DataKey>>),
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.engine {
            Engine::Dir(dir) => write!(f, "KeyStore(dir {})", dir.dir.display()),
            Engine::Pg(..) => f.write_str("KeyStore(postgres)"),
            Engine::Bundle(keys) => write!(f, "KeyStore(bundle of {})", keys.len()),
        }
    }
}

impl From<DirKeyStore> for KeyStore {
    fn from(store: DirKeyStore) -> Self {
        KeyStore::new(Engine::Dir(store))
    }
}

impl From<PgKeyStore> for KeyStore {
    fn from(store: PgKeyStore) -> Self {
        KeyStore::new(Engine::Pg(
            Box::new(store),
            tokio::runtime::Handle::try_current().ok(),
        ))
    }
}

impl KeyStore {
    fn new(engine: Engine) -> Self {
        KeyStore {
            engine: Arc::new(engine),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A read-only key store holding the given keys (`None`: destroyed), as
    /// an auditor's key bundle lists them. Creating or destroying a key in it
    /// fails.
    pub fn bundle(keys: HashMap<ConversationId, Option<DataKey>>) -> KeyStore {
        KeyStore::new(Engine::Bundle(keys))
    }

    fn cached(&self, conversation: ConversationId) -> Option<Option<DataKey>> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&conversation)
            .cloned()
    }

    fn remember(&self, conversation: ConversationId, state: &KeyState) {
        let entry = match state {
            KeyState::Live(key) => Some(key.clone()),
            KeyState::Destroyed => None,
            KeyState::Absent => return,
        };
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(conversation, entry);
    }

    /// The conversation's key, made and made durable if it has none. A
    /// destroyed key is [`KeyStoreError::Destroyed`].
    pub async fn create(&self, conversation: ConversationId) -> Result<DataKey, KeyStoreError> {
        match self.cached(conversation) {
            Some(Some(key)) => return Ok(key),
            Some(None) => return Err(KeyStoreError::Destroyed(conversation)),
            None => {}
        }
        let key = match &*self.engine {
            Engine::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.create(conversation)).await?
            }
            Engine::Pg(pg, _) => pg.create(conversation).await?,
            Engine::Bundle(_) => return Err(read_only()),
        };
        self.remember(conversation, &KeyState::Live(key.clone()));
        Ok(key)
    }

    /// What the store holds for the conversation.
    pub async fn get(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        if let Some(cached) = self.cached(conversation) {
            return Ok(cached.map_or(KeyState::Destroyed, KeyState::Live));
        }
        let state = match &*self.engine {
            Engine::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.get(conversation)).await?
            }
            Engine::Pg(pg, _) => pg.get(conversation).await?,
            Engine::Bundle(keys) => bundled(keys, conversation),
        };
        self.remember(conversation, &state);
        Ok(state)
    }

    /// [`KeyStore::get`] from a blocking thread (a replay), never from an
    /// async task.
    pub fn get_blocking(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        if let Some(cached) = self.cached(conversation) {
            return Ok(cached.map_or(KeyState::Destroyed, KeyState::Live));
        }
        let state = match &*self.engine {
            Engine::Dir(dir) => dir.get(conversation)?,
            Engine::Pg(pg, Some(handle)) => handle.block_on(pg.get(conversation))?,
            Engine::Pg(pg, None) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(pg.get(conversation))?,
            Engine::Bundle(keys) => bundled(keys, conversation),
        };
        self.remember(conversation, &state);
        Ok(state)
    }

    /// Loads every key the store holds into the cache at once (one query on
    /// PostgreSQL), so that a replay does not ask for them one by one.
    pub async fn preload(&self) -> Result<usize, KeyStoreError> {
        let all = match &*self.engine {
            Engine::Pg(pg, _) => pg.all().await?,
            Engine::Dir(_) | Engine::Bundle(_) => return Ok(0),
        };
        let count = all.len();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        for (conversation, state) in all {
            match state {
                KeyState::Live(key) => cache.insert(conversation, Some(key)),
                KeyState::Destroyed => cache.insert(conversation, None),
                KeyState::Absent => None,
            };
        }
        Ok(count)
    }

    /// Drops the conversation's key from this handle's cache and remembers
    /// it as destroyed (a `ConversationErased` event says so; destruction is
    /// final).
    pub fn forget(&self, conversation: ConversationId) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(conversation, None);
    }

    /// Destroys the conversation's key, durably; returns what it held before
    /// (destroying twice is harmless: the second finds [`KeyState::Destroyed`]).
    /// An absent key gets a tombstone too.
    pub async fn destroy(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        // Forget it first: from here on nothing is sealed or opened with it.
        self.forget(conversation);
        match &*self.engine {
            Engine::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.destroy(conversation)).await
            }
            Engine::Pg(pg, _) => pg.destroy(conversation).await,
            Engine::Bundle(_) => Err(read_only()),
        }
    }

    /// Carries a key over from another store (an import with the exported
    /// key bundle): a live key is stored (wrapped under this store's wrap), a
    /// destroyed one becomes a tombstone here too. A key this store already
    /// holds stays as it is.
    pub async fn restore(
        &self,
        conversation: ConversationId,
        state: KeyState,
    ) -> Result<(), KeyStoreError> {
        match state {
            KeyState::Absent => Ok(()),
            KeyState::Destroyed => self.destroy(conversation).await.map(drop),
            KeyState::Live(key) => {
                let stored = match &*self.engine {
                    Engine::Dir(dir) => {
                        let dir = dir.clone();
                        blocking(move || dir.create_with(conversation, Some(key))).await?
                    }
                    Engine::Pg(pg, _) => pg.create_with(conversation, Some(key)).await?,
                    Engine::Bundle(_) => return Err(read_only()),
                };
                self.remember(conversation, &KeyState::Live(stored));
                Ok(())
            }
        }
    }

    /// Seals the customer data of `events` that is still in plain text under
    /// its conversation's key, making the key (durably) where there is none
    /// yet; destroys the key of every conversation `events` erase. Called by
    /// the log before it stores an append.
    pub async fn seal(&self, events: &mut [Event]) -> Result<(), KeyStoreError> {
        for event in events.iter_mut() {
            let event_type = event.event_type().name();
            match event {
                Event::ConversationOpened(e) => {
                    seal_content(self, e.conversation, event_type, &mut e.customer).await?;
                }
                Event::MessagePosted(e) => {
                    seal_content(self, e.conversation, event_type, &mut e.body).await?;
                }
                Event::PrivateMessagePosted(e) => {
                    seal_content(self, e.conversation, event_type, &mut e.body).await?;
                }
                Event::ConversationErased(e) => {
                    self.destroy(e.conversation).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens the sealed customer data of `event` with its conversation's key:
    /// [`Content::Plain`] with a live key, [`Content::Erased`] once it is
    /// destroyed; without a key (a store or bundle that lacks it) it stays
    /// [`Content::Sealed`]. A `ConversationErased` event makes this handle
    /// forget the key.
    pub async fn open(&self, event: &mut Event) -> Result<(), KeyStoreError> {
        let Some(conversation) = sealed_conversation(event) else {
            return Ok(());
        };
        let state = self.get(conversation).await?;
        open_with(event, &state);
        Ok(())
    }

    /// [`KeyStore::open`] from a blocking thread.
    pub fn open_blocking(&self, event: &mut Event) -> Result<(), KeyStoreError> {
        let Some(conversation) = sealed_conversation(event) else {
            return Ok(());
        };
        let state = self.get_blocking(conversation)?;
        open_with(event, &state);
        Ok(())
    }

    /// Every conversation this store has a key for or destroyed one of, with
    /// its state; for an auditor's key bundle.
    pub async fn list(&self) -> Result<Vec<(ConversationId, KeyState)>, KeyStoreError> {
        match &*self.engine {
            Engine::Pg(pg, _) => pg.all().await,
            Engine::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.all()).await
            }
            Engine::Bundle(keys) => Ok(keys
                .iter()
                .map(|(c, k)| (*c, k.clone().map_or(KeyState::Destroyed, KeyState::Live)))
                .collect()),
        }
    }
}

fn read_only() -> KeyStoreError {
    KeyStoreError::Storage(StorageError::new(std::io::Error::other(
        "a key bundle is read-only",
    )))
}

fn bundled(keys: &HashMap<ConversationId, Option<DataKey>>, c: ConversationId) -> KeyState {
    match keys.get(&c) {
        Some(Some(key)) => KeyState::Live(key.clone()),
        Some(None) => KeyState::Destroyed,
        None => KeyState::Absent,
    }
}

async fn seal_content<T: AsRef<str>>(
    keys: &KeyStore,
    conversation: ConversationId,
    event_type: &str,
    content: &mut Content<T>,
) -> Result<(), KeyStoreError> {
    let Content::Plain(plain) = content else {
        return Ok(());
    };
    let key = keys.create(conversation).await?;
    let sealed = key.seal(conversation, event_type, plain.as_ref().as_bytes())?;
    *content = Content::Sealed(SealedValue::new(sealed));
    Ok(())
}

/// The conversation whose key `event` needs opened, if it holds sealed
/// content; forgets the key of an erased conversation on the way.
fn sealed_conversation(event: &Event) -> Option<ConversationId> {
    match event {
        Event::ConversationOpened(e) => {
            matches!(e.customer, Content::Sealed(_)).then_some(e.conversation)
        }
        Event::MessagePosted(e) => matches!(e.body, Content::Sealed(_)).then_some(e.conversation),
        Event::PrivateMessagePosted(e) => {
            matches!(e.body, Content::Sealed(_)).then_some(e.conversation)
        }
        _ => None,
    }
}

fn open_with(event: &mut Event, state: &KeyState) {
    let event_type = event.event_type().name();
    match event {
        Event::ConversationOpened(e) => {
            open_content(
                state,
                e.conversation,
                event_type,
                &mut e.customer,
                Name::from_stored,
            );
        }
        Event::MessagePosted(e) => {
            open_content(
                state,
                e.conversation,
                event_type,
                &mut e.body,
                MessageBody::from_stored,
            );
        }
        Event::PrivateMessagePosted(e) => {
            open_content(
                state,
                e.conversation,
                event_type,
                &mut e.body,
                MessageBody::from_stored,
            );
        }
        _ => {}
    }
}

fn open_content<T>(
    state: &KeyState,
    conversation: ConversationId,
    event_type: &str,
    content: &mut Content<T>,
    make: fn(String) -> T,
) {
    let Content::Sealed(sealed) = content else {
        return;
    };
    match state {
        KeyState::Destroyed => *content = Content::Erased,
        KeyState::Absent => {}
        KeyState::Live(key) => {
            // A value that does not open under its conversation's key (moved
            // from another record, or altered) stays sealed: it is shown as
            // such, never as someone else's text.
            if let Ok(plain) = key.open(conversation, event_type, sealed.as_bytes())
                && let Ok(text) = String::from_utf8(plain)
            {
                *content = Content::Plain(make(text));
            }
        }
    }
}

impl Log {
    /// The key store beside this log, on its engine: `<store>/keys/` for
    /// sled (the caller holds the store's lock: it has the log open), the
    /// `data_keys` table for PostgreSQL. Each call gives a handle with an
    /// empty cache.
    pub async fn key_store(&self, wrap: KeyWrap) -> Result<KeyStore, KeyStoreError> {
        if let Some(sled) = self.as_sled() {
            let path = sled.path().to_owned();
            return blocking(move || DirKeyStore::open(&path, wrap))
                .await
                .map(KeyStore::from);
        }
        match self.as_postgres() {
            Some(pg) => pg.key_store(wrap).await.map(KeyStore::from),
            None => Err(KeyStoreError::Storage(StorageError::new(
                std::io::Error::other("this log's engine has no key store"),
            ))),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KeyStoreError> + Send + 'static,
) -> Result<T, KeyStoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| KeyStoreError::Storage(StorageError::new(err)))?
}

/// The sled engine's key store: `<store>/keys/<conversation id>`, one file
/// per key holding the wrapped key ([`WRAPPED_KEY_LEN`] bytes); an empty file
/// is a destroyed key. Used by the process that holds the store's lock.
#[derive(Clone)]
pub struct DirKeyStore {
    dir: PathBuf,
    wrap: KeyWrap,
    /// Serializes this process's creations and destructions of one
    /// conversation's key (striped by conversation: keys of different
    /// conversations are written, and fsynced, in parallel).
    writing: Arc<[Mutex<()>; WRITING_STRIPES]>,
    /// Opened by a reader ([`DirKeyStore::open_read_only`]): creating or
    /// destroying a key fails.
    read_only: bool,
}

impl DirKeyStore {
    /// Opens (creating, durably) the key directory of the store at `store`.
    pub fn open(store: &Path, wrap: KeyWrap) -> Result<DirKeyStore, KeyStoreError> {
        let dir = store.join(KEYS_DIR);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            File::open(store)?.sync_all()?;
        }
        // A creation interrupted before its rename left a key no event uses:
        // shred it like a destroyed one.
        let mut shredded = false;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == TEMP_EXTENSION) {
                shred(&path)?;
                fs::remove_file(&path)?;
                shredded = true;
            }
        }
        if shredded {
            File::open(&dir)?.sync_all()?;
        }
        Ok(DirKeyStore {
            dir,
            wrap,
            writing: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
            read_only: false,
        })
    }

    /// The key directory of the store at `store`, for reading only (an
    /// auditor's tool on a stopped server's store): nothing is created,
    /// shredded or removed, not even a missing directory (a store of the
    /// plaintext era has none: every key is then absent); creating or
    /// destroying a key fails.
    pub fn open_read_only(store: &Path, wrap: KeyWrap) -> DirKeyStore {
        DirKeyStore {
            dir: store.join(KEYS_DIR),
            wrap,
            writing: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
            read_only: true,
        }
    }

    fn writable(&self) -> Result<(), KeyStoreError> {
        if self.read_only {
            return Err(KeyStoreError::Storage(StorageError::new(
                std::io::Error::other("this key store was opened read-only"),
            )));
        }
        Ok(())
    }

    fn writing(&self, conversation: ConversationId) -> std::sync::MutexGuard<'_, ()> {
        // The low bytes of a UUIDv7 are random.
        let stripe = usize::from(conversation.as_bytes()[15]) % WRITING_STRIPES;
        self.writing[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, conversation: ConversationId) -> PathBuf {
        self.dir.join(conversation.as_uuid().simple().to_string())
    }

    /// See [`KeyStore::get`].
    pub fn get(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        let mut file = match File::open(self.path(conversation)) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(KeyState::Absent),
            Err(err) => return Err(err.into()),
        };
        let mut wrapped = Vec::with_capacity(WRAPPED_KEY_LEN);
        (&mut file)
            .take(WRAPPED_KEY_LEN as u64 + 1)
            .read_to_end(&mut wrapped)?;
        // Empty: the tombstone. All zeros: a destruction interrupted between
        // its overwrite and its truncation.
        if wrapped.iter().all(|&b| b == 0) {
            return Ok(KeyState::Destroyed);
        }
        self.wrap
            .unwrap_key(conversation, &wrapped)
            .map(KeyState::Live)
            .map_err(|source| KeyStoreError::Damaged {
                conversation,
                source,
            })
    }

    /// Every key file's conversation and state (none if the directory is
    /// missing).
    pub fn all(&self) -> Result<Vec<(ConversationId, KeyState)>, KeyStoreError> {
        let mut all = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(all),
            Err(err) => return Err(err.into()),
        };
        for entry in entries {
            let name = entry?.file_name();
            let Some(conversation) = name
                .to_str()
                .and_then(|n| uuid::Uuid::try_parse(n).ok())
                .map(ConversationId::from_uuid)
            else {
                continue;
            };
            all.push((conversation, self.get(conversation)?));
        }
        Ok(all)
    }

    /// See [`KeyStore::create`]: written to a temporary file, fsynced, renamed,
    /// directory fsynced.
    pub fn create(&self, conversation: ConversationId) -> Result<DataKey, KeyStoreError> {
        self.create_with(conversation, None)
    }

    /// [`DirKeyStore::create`] with `key` (a key carried over from another
    /// store) instead of a fresh one; a key already there stays.
    pub fn create_with(
        &self,
        conversation: ConversationId,
        key: Option<DataKey>,
    ) -> Result<DataKey, KeyStoreError> {
        self.writable()?;
        let _writing = self.writing(conversation);
        match self.get(conversation)? {
            KeyState::Live(key) => return Ok(key),
            KeyState::Destroyed => return Err(KeyStoreError::Destroyed(conversation)),
            KeyState::Absent => {}
        }
        let key = match key {
            Some(key) => key,
            None => DataKey::generate()?,
        };
        let wrapped = self.wrap.wrap(conversation, &key)?;
        let path = self.path(conversation);
        let temp = path.with_extension(TEMP_EXTENSION);
        let mut file = File::create(&temp)?;
        file.write_all(&wrapped)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(key)
    }

    /// See [`KeyStore::destroy`]: the key's bytes overwritten in place with
    /// zeros and fdatasynced, then the file truncated to zero length (the
    /// tombstone) and fsynced, and the directory fsynced.
    pub fn destroy(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        self.writable()?;
        let _writing = self.writing(conversation);
        let path = self.path(conversation);
        let before = match self.get(conversation) {
            Ok(state) => state,
            // A damaged key is destroyed all the same.
            Err(KeyStoreError::Damaged { .. }) => KeyState::Absent,
            Err(err) => return Err(err),
        };
        if before == KeyState::Destroyed {
            return Ok(before);
        }
        shred(&path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(before)
    }
}

/// Lock stripes of a [`DirKeyStore`]'s writes.
const WRITING_STRIPES: usize = 64;

/// The extension of a key file being created.
const TEMP_EXTENSION: &str = "tmp";

/// Overwrites the file at `path` (created if missing) in place with zeros,
/// `fdatasync`s, truncates it to zero length and fsyncs it.
fn shred(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    // Key files are WRAPPED_KEY_LEN bytes; anything longer is not ours to
    // read whole, but its first bytes are overwritten all the same.
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 16);
    file.write_all(&vec![0u8; len])?;
    file.sync_data()?;
    file.set_len(0)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_read_only_key_directory_reads_and_never_writes() {
        let store = tempfile::tempdir().unwrap();
        let wrap = KeyWrap::from_secret(b"a server secret of 32 bytes or more");
        // Missing directory: nothing made, every key absent.
        let reader = DirKeyStore::open_read_only(store.path(), wrap.clone());
        let live = ConversationId::new();
        assert_eq!(reader.get(live).unwrap(), KeyState::Absent);
        assert!(reader.all().unwrap().is_empty());
        assert!(!store.path().join(KEYS_DIR).exists());

        let writer = DirKeyStore::open(store.path(), wrap.clone()).unwrap();
        let key = writer.create(live).unwrap();
        let erased = ConversationId::new();
        writer.create(erased).unwrap();
        writer.destroy(erased).unwrap();
        // An interrupted creation: `open` would shred it, a reader leaves it.
        let temp = store.path().join(KEYS_DIR).join("left-over.tmp");
        std::fs::write(&temp, b"half").unwrap();

        let reader = DirKeyStore::open_read_only(store.path(), wrap);
        assert!(temp.exists());
        assert_eq!(reader.get(live).unwrap(), KeyState::Live(key));
        assert_eq!(reader.get(erased).unwrap(), KeyState::Destroyed);
        let mut all = reader.all().unwrap();
        all.sort_by_key(|(c, _)| *c);
        assert_eq!(all.len(), 2);
        assert!(reader.create(ConversationId::new()).is_err());
        assert!(reader.destroy(live).is_err());
        assert!(matches!(reader.get(live).unwrap(), KeyState::Live(_)));
        assert_eq!(
            std::fs::read_dir(store.path().join(KEYS_DIR))
                .unwrap()
                .count(),
            3
        );
    }
}
