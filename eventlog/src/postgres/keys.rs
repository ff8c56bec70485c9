//! [`PgKeyStore`]: the key store of a PostgreSQL log (`crate::keystore`),
//! a table beside the events in the same database.
//!
//! `backchannel.data_keys(conversation uuid primary key, wrapped bytea,
//! destroyed_at timestamptz)`: `wrapped` is the data key wrapped under the
//! server secret's key (`crate::crypt::KeyWrap`), NULL once destroyed (the
//! row stays as the tombstone). Created idempotently on first use, under the
//! schema's advisory lock.
//!
//! A key is inserted and committed (`INSERT … ON CONFLICT DO NOTHING`, then
//! the row read back, so two nodes creating the same conversation's key agree
//! on one) before the caller appends any event sealed under it; destruction
//! is an `UPDATE … SET wrapped = NULL` committed before it returns, followed
//! by a `VACUUM` of the table so the dead row version's space is reclaimed.
//! PostgreSQL still keeps the old wrapped bytes in its WAL (and in base
//! backups and archives) until those age out; they are useless without the
//! server's secret (`docs/erasure.md`).

use std::sync::{Arc, Mutex, PoisonError};

use backchannel_domain::ids::ConversationId;
use tokio_postgres::Client;

use super::{Db, PgEventLog};
use crate::crypt::{DataKey, KeyWrap};
use crate::error::StorageError;
use crate::keystore::{KeyState, KeyStoreError};

const KEYS_SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7291044403716513);
CREATE TABLE IF NOT EXISTS backchannel.data_keys (
    conversation uuid PRIMARY KEY,
    wrapped bytea,
    destroyed_at timestamptz
);
COMMIT;
";

/// The key store of a [`PgEventLog`]'s database. Cheap to clone.
#[derive(Clone)]
pub struct PgKeyStore {
    db: Db,
    wrap: KeyWrap,
    client: Arc<Mutex<Option<Arc<Client>>>>,
}

impl PgEventLog {
    /// The key store beside this log (its table created if absent).
    pub async fn key_store(&self, wrap: KeyWrap) -> Result<PgKeyStore, KeyStoreError> {
        let store = PgKeyStore {
            db: self.shared.db.clone(),
            wrap,
            client: Arc::new(Mutex::new(None)),
        };
        store
            .client()
            .await?
            .batch_execute(KEYS_SCHEMA)
            .await
            .map_err(|e| store.failed(e))?;
        Ok(store)
    }
}

impl PgEventLog {
    /// The key store beside this log, for reading only (an auditor's tool
    /// on a log opened read-only): its table is not created, and its
    /// sessions are this log's (read-only ones for `Log::open_read_only`).
    pub fn key_store_read_only(&self, wrap: KeyWrap) -> PgKeyStore {
        PgKeyStore {
            db: self.shared.db.clone(),
            wrap,
            client: Arc::new(Mutex::new(None)),
        }
    }
}

impl PgKeyStore {
    async fn client(&self) -> Result<Arc<Client>, KeyStoreError> {
        let current = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(client) = current
            && !client.is_closed()
        {
            return Ok(client);
        }
        let conn = self.db.connect(None).await?;
        let client = Arc::new(conn.client);
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }

    /// A failed statement; the next call reconnects if the connection died.
    fn failed(&self, err: tokio_postgres::Error) -> KeyStoreError {
        KeyStoreError::Storage(StorageError::new(err))
    }

    fn state(
        &self,
        conversation: ConversationId,
        row: Option<tokio_postgres::Row>,
    ) -> Result<KeyState, KeyStoreError> {
        let Some(row) = row else {
            return Ok(KeyState::Absent);
        };
        let wrapped: Option<Vec<u8>> = row.try_get(0).map_err(|e| self.failed(e))?;
        self.unwrapped(conversation, wrapped)
    }

    /// The state a key row's `wrapped` column holds: `NULL` once destroyed.
    fn unwrapped(
        &self,
        conversation: ConversationId,
        wrapped: Option<Vec<u8>>,
    ) -> Result<KeyState, KeyStoreError> {
        match wrapped {
            None => Ok(KeyState::Destroyed),
            Some(wrapped) => self
                .wrap
                .unwrap_key(conversation, &wrapped)
                .map(KeyState::Live)
                .map_err(|source| KeyStoreError::Damaged {
                    conversation,
                    source,
                }),
        }
    }

    /// See [`crate::KeyStore::get`].
    pub async fn get(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT wrapped FROM backchannel.data_keys WHERE conversation = $1",
                &[conversation.as_uuid()],
            )
            .await
            .map_err(|e| self.failed(e))?;
        self.state(conversation, row)
    }

    /// Every key row, unwrapped (see [`crate::KeyStore::preload`]).
    pub async fn all(&self) -> Result<Vec<(ConversationId, KeyState)>, KeyStoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT conversation, wrapped FROM backchannel.data_keys",
                &[],
            )
            .await
            .map_err(|e| self.failed(e))?;
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let conversation: uuid::Uuid = row.try_get(0).map_err(|e| self.failed(e))?;
            let conversation = ConversationId::from_uuid(conversation);
            let wrapped: Option<Vec<u8>> = row.try_get(1).map_err(|e| self.failed(e))?;
            all.push((conversation, self.unwrapped(conversation, wrapped)?));
        }
        Ok(all)
    }

    /// See [`crate::KeyStore::create`]: committed before it returns.
    pub async fn create(&self, conversation: ConversationId) -> Result<DataKey, KeyStoreError> {
        self.create_with(conversation, None).await
    }

    /// [`PgKeyStore::create`] with `key` (carried over from another store)
    /// instead of a fresh one; a key already there stays.
    pub async fn create_with(
        &self,
        conversation: ConversationId,
        key: Option<DataKey>,
    ) -> Result<DataKey, KeyStoreError> {
        let key = match key {
            Some(key) => key,
            None => DataKey::generate()?,
        };
        let wrapped = self.wrap.wrap(conversation, &key)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO backchannel.data_keys (conversation, wrapped) VALUES ($1, $2) \
                 ON CONFLICT (conversation) DO NOTHING",
                &[conversation.as_uuid(), &wrapped],
            )
            .await
            .map_err(|e| self.failed(e))?;
        // Another node may have created it first: the stored key is the key.
        match self.get(conversation).await? {
            KeyState::Live(stored) => Ok(stored),
            KeyState::Destroyed => Err(KeyStoreError::Destroyed(conversation)),
            KeyState::Absent => Err(KeyStoreError::Storage(StorageError::new(
                std::io::Error::other("a key row just inserted is missing"),
            ))),
        }
    }

    /// See [`crate::KeyStore::destroy`]: committed before it returns, then the
    /// table vacuumed.
    pub async fn destroy(&self, conversation: ConversationId) -> Result<KeyState, KeyStoreError> {
        let client = self.client().await?;
        let before = match self.get(conversation).await {
            Ok(state) => state,
            Err(KeyStoreError::Damaged { .. }) => KeyState::Absent,
            Err(err) => return Err(err),
        };
        if before == KeyState::Destroyed {
            return Ok(before);
        }
        client
            .execute(
                "INSERT INTO backchannel.data_keys (conversation, wrapped, destroyed_at) \
                 VALUES ($1, NULL, now()) ON CONFLICT (conversation) \
                 DO UPDATE SET wrapped = NULL, destroyed_at = now()",
                &[conversation.as_uuid()],
            )
            .await
            .map_err(|e| self.failed(e))?;
        // Best effort: reclaims the dead row version; the destruction is
        // already committed.
        if let Err(err) = client.batch_execute("VACUUM backchannel.data_keys").await {
            tracing::warn!(error = %err, "VACUUM of the key table after a destruction failed");
        }
        Ok(before)
    }
}
