//! Unit tests of the sled key directory.
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
