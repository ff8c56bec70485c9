#![allow(clippy::unwrap_used)]
//! The key store (SPEC section 12) on both engines: keys durable once
//! created, one key per conversation, destruction durable and final, and no
//! byte of a destroyed key left in a sled store's files.

use std::path::Path;

use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::crypt::{KeyWrap, WRAPPED_KEY_LEN};
use backchannel_eventlog::{
    DirKeyStore, KEYS_DIR, KeyState, KeyStore, KeyStoreError, Log, PgEventLog, PgOptions,
    SledEventLog, StoreSpec,
};
use backchannel_pgtest::PgCluster;

fn wrap() -> KeyWrap {
    KeyWrap::from_secret(b"the server secret")
}

/// The body every engine runs: `open` gives a fresh handle on the same store
/// (a restart: nothing cached).
async fn conformance<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = KeyStore>,
{
    let store = open().await;
    let conversation = ConversationId::new();
    let other = ConversationId::new();
    assert_eq!(store.get(conversation).await.unwrap(), KeyState::Absent);

    let key = store.create(conversation).await.unwrap();
    let again = store.create(conversation).await.unwrap();
    assert_eq!(key, again, "one key per conversation");
    let other_key = store.create(other).await.unwrap();
    assert_ne!(key, other_key);
    let sealed = key.seal(conversation, "MessagePosted", b"hello").unwrap();

    // Durable: a fresh handle (nothing cached) finds the same key.
    let restarted = open().await;
    assert_eq!(
        restarted.get(conversation).await.unwrap(),
        KeyState::Live(key.clone())
    );
    assert_eq!(restarted.create(conversation).await.unwrap(), key);

    // Destroyed: on this handle, on a fresh one, and never replaced.
    assert_eq!(
        store.destroy(conversation).await.unwrap(),
        KeyState::Live(key.clone())
    );
    assert_eq!(store.get(conversation).await.unwrap(), KeyState::Destroyed);
    assert_eq!(
        store.destroy(conversation).await.unwrap(),
        KeyState::Destroyed
    );
    let fresh = open().await;
    assert_eq!(fresh.get(conversation).await.unwrap(), KeyState::Destroyed);
    assert!(matches!(
        fresh.create(conversation).await,
        Err(KeyStoreError::Destroyed(c)) if c == conversation
    ));
    // The handle that cached it before forgets it when told (another node's
    // erasure arrives as an event).
    assert_eq!(
        restarted.get(conversation).await.unwrap(),
        KeyState::Live(key.clone())
    );
    restarted.forget(conversation);
    assert_eq!(
        restarted.get(conversation).await.unwrap(),
        KeyState::Destroyed
    );
    // Other conversations are untouched.
    assert_eq!(
        fresh.get(other).await.unwrap(),
        KeyState::Live(other_key.clone())
    );
    // Destroying a conversation that never had a key leaves a tombstone too.
    let never = ConversationId::new();
    assert_eq!(store.destroy(never).await.unwrap(), KeyState::Absent);
    assert!(matches!(
        store.create(never).await,
        Err(KeyStoreError::Destroyed(_))
    ));
    // What was sealed under the destroyed key still is just bytes.
    assert_eq!(sealed[0], 1);

    // Keys carried over from another store (an import with its key
    // bundle): stored durably, a destroyed one stays destroyed, and a key
    // already held is never replaced.
    let carried = ConversationId::new();
    let erased = ConversationId::new();
    let carried_key = backchannel_eventlog::DataKey::generate().unwrap();
    store
        .restore(carried, KeyState::Live(carried_key.clone()))
        .await
        .unwrap();
    store.restore(erased, KeyState::Destroyed).await.unwrap();
    store
        .restore(other, KeyState::Live(carried_key.clone()))
        .await
        .unwrap();
    let fresh = open().await;
    assert_eq!(
        fresh.get(carried).await.unwrap(),
        KeyState::Live(carried_key)
    );
    assert_eq!(fresh.get(erased).await.unwrap(), KeyState::Destroyed);
    assert_eq!(
        fresh.get(other).await.unwrap(),
        KeyState::Live(other_key.clone())
    );

    // A preload (a server warming its cache) reads every key at once: live,
    // destroyed, carried over.
    let warmed = open().await;
    assert!(warmed.preload().await.unwrap() >= 5);
    assert_eq!(warmed.get(other).await.unwrap(), KeyState::Live(other_key));
    assert_eq!(warmed.get(conversation).await.unwrap(), KeyState::Destroyed);
    assert_eq!(warmed.get(erased).await.unwrap(), KeyState::Destroyed);
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn dir_key_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    conformance(|| {
        let path = path.clone();
        async move { KeyStore::from(DirKeyStore::open(&path, wrap()).unwrap()) }
    })
    .await;
}

/// Through the engine seam: the key store of an open sled log.
#[tokio::test]
async fn a_sled_logs_key_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&StoreSpec::sled(dir.path().join("store"))).unwrap();
    conformance(|| {
        let log = log.clone();
        async move { log.key_store(wrap()).await.unwrap() }
    })
    .await;
    assert!(dir.path().join("store").join(KEYS_DIR).is_dir());
}

#[tokio::test]
async fn a_destroyed_key_leaves_no_byte_in_the_store_and_is_never_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let log = SledEventLog::open(&store_path).unwrap();
    let keys = KeyStore::from(DirKeyStore::open(&store_path, wrap()).unwrap());
    let conversation = ConversationId::new();
    let key = keys.create(conversation).await.unwrap();
    let file = store_path
        .join(KEYS_DIR)
        .join(conversation.as_uuid().simple().to_string());
    let wrapped = std::fs::read(&file).unwrap();
    assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
    // Stored wrapped: another server secret cannot read it.
    let foreign = DirKeyStore::open(&store_path, KeyWrap::from_secret(b"another")).unwrap();
    assert!(matches!(
        foreign.get(conversation),
        Err(KeyStoreError::Damaged { .. })
    ));
    assert_eq!(files_containing(&store_path, &wrapped).len(), 1);

    // A read-only snapshot copy of the store does not copy the keys.
    drop(log);
    let copy = dir.path().join("copy");
    let snapshot = SledEventLog::open_snapshot(&store_path, &copy).unwrap();
    drop(snapshot);
    assert!(copy.exists());
    assert!(files_containing(&copy, &wrapped).is_empty());

    let log = SledEventLog::open(&store_path).unwrap();
    keys.destroy(conversation).await.unwrap();
    log.close().unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "the tombstone");
    assert!(
        files_containing(&store_path, &wrapped).is_empty(),
        "no byte run of the wrapped key survives"
    );
    assert!(
        files_containing(&store_path, &wrapped[1 + 24..1 + 24 + 16]).is_empty(),
        "not even part of its ciphertext"
    );
    drop(key);
}

/// A crash in the middle of a destruction (zeros written, not yet truncated)
/// still reads as destroyed; one in the middle of a creation (temporary file
/// not renamed) leaves nothing once reopened.
#[test]
fn interrupted_writes_leave_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirKeyStore::open(dir.path(), wrap()).unwrap();
    let conversation = ConversationId::new();
    store.create(conversation).unwrap();
    let name = conversation.as_uuid().simple().to_string();
    let file = dir.path().join(KEYS_DIR).join(&name);
    std::fs::write(&file, [0u8; WRAPPED_KEY_LEN]).unwrap();
    assert_eq!(store.get(conversation).unwrap(), KeyState::Destroyed);

    let other = ConversationId::new();
    store.create(other).unwrap();
    let other_file = dir
        .path()
        .join(KEYS_DIR)
        .join(other.as_uuid().simple().to_string());
    let wrapped = std::fs::read(&other_file).unwrap();
    let temp = other_file.with_extension("tmp");
    std::fs::rename(&other_file, &temp).unwrap();
    assert_eq!(files_containing(dir.path(), &wrapped).len(), 1);
    let reopened = DirKeyStore::open(dir.path(), wrap()).unwrap();
    assert!(!temp.exists());
    assert!(files_containing(dir.path(), &wrapped).is_empty());
    assert_eq!(reopened.get(other).unwrap(), KeyState::Absent);
}

#[tokio::test]
async fn postgres_key_store_conforms_and_nodes_agree() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    conformance(|| {
        let url = url.clone();
        async move {
            let log = Log::from(
                PgEventLog::connect(&url, PgOptions::default())
                    .await
                    .unwrap(),
            );
            log.key_store(wrap()).await.unwrap()
        }
    })
    .await;

    // Two nodes creating the same conversation's key at once end with one key.
    let a = PgEventLog::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let b = PgEventLog::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let a = KeyStore::from(a.key_store(wrap()).await.unwrap());
    let b = KeyStore::from(b.key_store(wrap()).await.unwrap());
    for _ in 0..20 {
        let conversation = ConversationId::new();
        let (ka, kb) = tokio::join!(a.create(conversation), b.create(conversation));
        assert_eq!(ka.unwrap(), kb.unwrap());
    }
    // The destroyed key's row keeps no key bytes.
    let conversation = ConversationId::new();
    a.create(conversation).await.unwrap();
    a.destroy(conversation).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT wrapped, destroyed_at IS NOT NULL FROM backchannel.data_keys \
             WHERE conversation = $1",
            &[conversation.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<Vec<u8>>>(0), None);
    assert!(row.get::<_, bool>(1));
}
