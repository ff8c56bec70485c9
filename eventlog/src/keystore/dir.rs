//! The sled engine's key store: one small file per conversation's key in
//! `<store>/keys/`, overwritten with zeros when destroyed (see the parent
//! module for why not a sled tree).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use backchannel_domain::ids::ConversationId;

use super::{KEYS_DIR, KeyState, KeyStoreError};
use crate::crypt::{DataKey, KeyWrap, WRAPPED_KEY_LEN};
use crate::error::StorageError;

/// The sled engine's key store: `<store>/keys/<conversation id>`, one file
/// per key holding the wrapped key ([`WRAPPED_KEY_LEN`] bytes); an empty file
/// is a destroyed key. Used by the process that holds the store's lock.
#[derive(Clone)]
pub struct DirKeyStore {
    pub(super) dir: PathBuf,
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

    /// See [`KeyStore::get`](super::KeyStore::get).
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

    /// See [`KeyStore::create`](super::KeyStore::create): written to a temporary file, fsynced, renamed,
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

    /// See [`KeyStore::destroy`](super::KeyStore::destroy): the key's bytes overwritten in place with
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
