#![allow(clippy::unwrap_used)]

//! Tamper evidence and integrity through the real `replay-tool` binary (SPEC
//! section 7): a forged export whose chain, head hash and trailer were
//! recomputed passes the chain check but fails `verify --key`; `verify
//! --expect-head` checks a head published earlier; a store whose log lost
//! acknowledged events fails `verify --data-dir`, naming both positions.

mod support;

use std::path::{Path, PathBuf};

use backchannel_domain::events::Event;
use backchannel_domain::values::{Content, MessageBody};
use backchannel_eventlog::portable::{PortableReader, PortableWriter};
use backchannel_eventlog::{SledEventLog, codec, hex};
use support::*;

/// A server's data dir: `secret` (hex, as the server writes it) beside
/// `store` (holding the scenario), and the store's export, authenticated
/// with the secret beside it.
struct Exported {
    dir: tempfile::TempDir,
    store: PathBuf,
    secret: PathBuf,
    file: PathBuf,
}

fn exported() -> Exported {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", "5e".repeat(32))).unwrap();
    let store = dir.path().join("store");
    let records = scenario_records()
        .into_iter()
        .map(Ok::<_, std::convert::Infallible>);
    SledEventLog::import(&store, records)
        .unwrap()
        .close()
        .unwrap();
    let file = dir.path().join("export.bclog");
    let out = tool(&["export", "--data-dir", s(&store), "--out", s(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("MAC"), "{}", stderr(&out));
    Exported {
        dir,
        store,
        secret,
        file,
    }
}

/// The file's records and header.
fn read(file: &Path) -> (Vec<Vec<u8>>, backchannel_eventlog::portable::FileHeader) {
    let mut reader = PortableReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let header = reader.header();
    let mut records = Vec::new();
    while let Some(event) = reader.next_record() {
        event.unwrap();
        records.push(reader.record_bytes().to_vec());
    }
    (records, header)
}

/// The export with its first private message rewritten, and the chain
/// recomputed from there on: what someone without the key can make.
fn forge(records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut forged = Vec::new();
    let mut chain = [0u8; 32];
    let mut rewritten = false;
    for bytes in records {
        let mut recorded = codec::decode_record(bytes).unwrap();
        if !rewritten && let Event::PrivateMessagePosted(message) = &mut recorded.event {
            message.body =
                Content::Legacy(MessageBody::parse("Refund them in full, no questions.").unwrap());
            rewritten = true;
        }
        recorded.envelope.prev_hash = chain;
        let mut out = Vec::new();
        codec::encode_record(&recorded.envelope, &recorded.event, &mut out).unwrap();
        chain = codec::record_hash(&out);
        forged.push(out);
    }
    assert!(rewritten, "the scenario has a private message");
    forged
}

fn write(path: &Path, records: &[Vec<u8>], mac: Option<[u8; 32]>) {
    let head_hash = codec::record_hash(records.last().unwrap());
    let out = std::fs::File::create(path).unwrap();
    let mut writer = PortableWriter::with_mac(out, records.len() as u64, head_hash, mac).unwrap();
    for record in records {
        writer.push(record).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn a_forged_export_fails_verify_with_the_key() {
    let e = exported();
    let out = tool(&["verify", "--file", s(&e.file), "--key", s(&e.secret)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("MAC verifies"), "{}", stdout(&out));

    let (records, header) = read(&e.file);
    let forged = forge(&records);
    assert_ne!(forged, records);
    // With the genuine file's MAC copied over, and with none at all.
    for (name, mac) in [("copied MAC", header.mac), ("no MAC", None)] {
        let path = e.dir.path().join(format!("forged-{}.bclog", name.len()));
        write(&path, &forged, mac);
        // The chain, head hash and trailer hold: without the key nothing
        // shows the forgery.
        let out = tool(&["verify", "--file", s(&path)]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let out = tool(&["verify", "--file", s(&path), "--key", s(&e.secret)]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("FAILED"), "{name}: {message}");
        if mac.is_some() {
            assert!(
                message.contains("not authenticated by this key"),
                "{message}"
            );
        } else {
            assert!(message.contains("carries no MAC"), "{message}");
        }
        assert!(stdout(&out).is_empty());
        // Exporting it with the key is refused too (a copied MAC).
        if mac.is_some() {
            let again = e.dir.path().join("laundered.bclog");
            let out = tool(&[
                "export",
                "--file",
                s(&path),
                "--key",
                s(&e.secret),
                "--out",
                s(&again),
            ]);
            assert_eq!(code(&out), 1, "{}", stderr(&out));
            assert!(!again.exists());
        }
    }
    // The genuine file checked with another server's key fails as well.
    let other = e.dir.path().join("other-secret");
    std::fs::write(&other, "a1".repeat(32)).unwrap();
    let out = tool(&["verify", "--file", s(&e.file), "--key", s(&other)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // A configured secret given as the value itself.
    let configured = "a configured secret of thirty-two bytes or more";
    let log = SledEventLog::open(&e.store).unwrap();
    log.set_head_key(backchannel_eventlog::HeadKey::from_secret(
        configured.as_bytes(),
    ))
    .unwrap();
    let with_configured = e.dir.path().join("configured.bclog");
    log.export(std::fs::File::create(&with_configured).unwrap(), |_| {})
        .unwrap();
    log.close().unwrap();
    let out = tool(&["verify", "--file", s(&with_configured), "--key", configured]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A store carries no MAC: --key with --data-dir is a usage error.
    let out = tool(&["verify", "--data-dir", s(&e.store), "--key", s(&e.secret)]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn import_with_the_key_refuses_a_forged_export_and_without_it_warns() {
    let e = exported();
    // Genuine export, right key: imported.
    let genuine = e.dir.path().join("genuine");
    let out = tool(&[
        "import",
        "--file",
        s(&e.file),
        "--into",
        s(&genuine),
        "--key",
        s(&e.secret),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not checked"), "{}", stderr(&out));
    SledEventLog::open(&genuine).unwrap().close().unwrap();

    let (records, header) = read(&e.file);
    let forged = forge(&records);
    for (name, mac) in [("copied MAC", header.mac), ("no MAC", None)] {
        let path = e.dir.path().join(format!("forged-{}.bclog", name.len()));
        write(&path, &forged, mac);
        // With the key: refused, and no store left behind.
        let into = e.dir.path().join(format!("forged-store-{}", name.len()));
        let out = tool(&[
            "import",
            "--file",
            s(&path),
            "--into",
            s(&into),
            "--key",
            s(&e.secret),
        ]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("nothing written"), "{name}: {message}");
        if mac.is_some() {
            assert!(
                message.contains("not authenticated by this key"),
                "{message}"
            );
        } else {
            assert!(message.contains("carries no MAC"), "{message}");
        }
        assert!(!into.exists(), "{name}: a store was left behind");
        // Without the key: imported, with a warning that says whether the
        // file carries a MAC.
        let out = tool(&["import", "--file", s(&path), "--into", s(&into)]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains("authenticity was not checked"),
            "{message}"
        );
        if mac.is_some() {
            assert!(message.contains("carries a MAC"), "{message}");
        } else {
            assert!(message.contains("carries no MAC"), "{message}");
        }
    }
}

#[test]
fn an_export_of_file_format_1_reads_but_is_not_authenticated() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let demo = fixtures.join("portable/demo-format-1.bclog");
    let bytes = std::fs::read(&demo).unwrap();
    assert_eq!(bytes[8..10], [0, 1], "the fixture is file format 1");
    let out = tool(&["verify", "--file", s(&demo)]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The demo log as it was exported before file format 2 (and before the
    // round-robin turn event): every record still reads.
    assert!(!read(&demo).0.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "5e".repeat(32)).unwrap();
    let out = tool(&["verify", "--file", s(&demo), "--key", s(&secret)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("file format 1"), "{}", stderr(&out));
}

#[test]
fn expect_head_checks_a_head_published_earlier() {
    let e = exported();
    let (records, _) = read(&e.file);
    let head = records.len() as u64;
    let head_hash = hex(&codec::record_hash(&records[head as usize - 1]));
    let at_10 = format!("10:{}", hex(&codec::record_hash(&records[9])));
    for source in [["--file", s(&e.file)], ["--data-dir", s(&e.store)]] {
        for expected in [head_hash.as_str(), at_10.as_str()] {
            let mut args = vec!["verify", "--expect-head", expected];
            args.extend(source);
            let out = tool(&args);
            assert!(out.status.success(), "{expected}: {}", stderr(&out));
            assert!(stdout(&out).contains("expected head"), "{}", stdout(&out));
        }
        // Another hash, at the head or at position 10.
        let wrong_head = hex(&codec::record_hash(&records[0]));
        let wrong_at_10 = format!("10:{wrong_head}");
        let beyond = format!("{}:{head_hash}", head + 5);
        for (expected, says) in [
            (wrong_head.as_str(), format!("position {head}")),
            (wrong_at_10.as_str(), "position 10".to_owned()),
            (beyond.as_str(), format!("ends at position {head}")),
        ] {
            let mut args = vec!["verify", "--expect-head", expected];
            args.extend(source);
            let out = tool(&args);
            assert_eq!(code(&out), 1, "{expected}: {}", stderr(&out));
            assert!(stderr(&out).contains(&says), "{}", stderr(&out));
        }
    }
    let out = tool(&["verify", "--file", s(&e.file), "--expect-head", "nothex"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// A store whose sled files went back to an older copy: `verify --data-dir`
/// (through its snapshot copy, head record included) fails, naming both
/// positions, and exits 1.
#[test]
fn verify_refuses_a_store_that_lost_acknowledged_events() {
    let e = exported();
    let records = scenario_records();
    let half = records.len() / 2;
    let shorter = e.dir.path().join("shorter");
    SledEventLog::import(
        &shorter,
        records[..half]
            .iter()
            .cloned()
            .map(Ok::<_, std::convert::Infallible>),
    )
    .unwrap()
    .close()
    .unwrap();
    std::fs::remove_dir_all(e.store.join("sled")).unwrap();
    copy_dir(&shorter.join("sled"), &e.store.join("sled"));
    let out = tool(&["verify", "--data-dir", s(&e.store)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!("position {}", records.len()))
            && message.contains(&format!("position {half}")),
        "{message}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
