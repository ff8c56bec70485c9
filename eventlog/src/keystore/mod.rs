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
use std::sync::{Arc, Mutex, PoisonError};

use backchannel_domain::events::{Event, EventType};
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::{Content, Name};

use crate::crypt::{CryptError, DataKey, KeyWrap};
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
    /// PostgreSQL, one pass over the key files on sled), so that reads do not
    /// ask for them one by one. A server runs it in the background once it
    /// has started.
    pub async fn preload(&self) -> Result<usize, KeyStoreError> {
        let all = match &*self.engine {
            Engine::Pg(pg, _) => pg.all().await?,
            Engine::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.all()).await?
            }
            Engine::Bundle(_) => return Ok(0),
        };
        let count = all.len();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        for (conversation, state) in all {
            let entry = match state {
                KeyState::Live(key) => Some(key),
                KeyState::Destroyed => None,
                KeyState::Absent => continue,
            };
            // What the cache learnt meanwhile (a destruction) is newer.
            cache.entry(conversation).or_insert(entry);
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
    /// [`Content::Sealed`]. An event without sealed content is left as it
    /// is; a `ConversationErased` does not make this handle forget the key
    /// (the log's reads do that: [`KeyStore::forget`]).
    pub async fn open(&self, event: &mut Event) -> Result<(), KeyStoreError> {
        let Some(conversation) = sealed_conversation(event) else {
            return Ok(());
        };
        let state = self.get(conversation).await?;
        open_with(event, &state);
        Ok(())
    }

    /// Opens a customer's name that a read model kept sealed (it applied the
    /// conversation's opening unopened, at a server's catch-up):
    /// [`Content::Plain`] with a live key, [`Content::Erased`] once it is
    /// destroyed; a name that is not sealed comes back as it is.
    pub async fn open_customer(
        &self,
        conversation: ConversationId,
        customer: &Content<Name>,
    ) -> Result<Content<Name>, KeyStoreError> {
        let Content::Sealed(_) = customer else {
            return Ok(customer.clone());
        };
        let state = self.get(conversation).await?;
        let mut opened = customer.clone();
        open_content(
            &state,
            conversation,
            EventType::ConversationOpened.name(),
            &mut opened,
            Name::from_stored,
        );
        Ok(opened)
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

mod content;
mod dir;
#[cfg(test)]
mod tests;

use content::{bundled, open_content, open_with, read_only, seal_content, sealed_conversation};
pub use dir::DirKeyStore;
