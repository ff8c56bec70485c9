#![allow(clippy::unwrap_used)]
//! Format stability (SPEC section 6: stored events are forever).
//!
//! `fixtures/events/` holds the encoded payload of one sample of every event type
//! and schema version (`<Type>.v<N>.bin`), and a short chain of full stored
//! records with fixed envelopes (`record.codec<N>.<position>.<Type>.bin`), and
//! that chain framed as one stored chunk (`chunk.v<N>.3records.bin`). The
//! tests decode every file and compare it with the samples of
//! `backchannel_domain::samples`, then re-encode and compare bytes.
//!
//! The files are written only when `BLESS_FIXTURES=1` is set. Never re-bless a
//! file that already exists for a released type and version: a failure here means
//! stored events would no longer read back the same.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use backchannel_domain::events::{Event, EventType};
use backchannel_domain::ids::{CommandId, CorrelationId, EventId, StaffId};
use backchannel_domain::model::Actor;
use backchannel_domain::samples::{one_of_each, plaintext_era};
use backchannel_domain::values::Content;
use backchannel_eventlog::codec::{self, CODEC_VERSION};
use backchannel_eventlog::{Envelope, RecordedAt};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/events")
}

/// Whether `BLESS_FIXTURES` asks to rewrite the committed files: only `1` does, unset
/// or empty leaves them, and any other value is refused (so `0` cannot bless).
fn blessing() -> bool {
    match std::env::var_os("BLESS_FIXTURES") {
        None => false,
        Some(v) if v.is_empty() => false,
        Some(v) if v == "1" => true,
        Some(v) => panic!(
            "BLESS_FIXTURES must be 1 or unset, got `{}`",
            v.to_string_lossy()
        ),
    }
}

/// Compares `bytes` with the fixture file `name`, or writes it when blessing.
fn check_fixture(name: &str, bytes: &[u8]) {
    let path = fixtures_dir().join(name);
    if blessing() {
        std::fs::create_dir_all(fixtures_dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let stored = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "fixture {} is missing ({err}); run with BLESS_FIXTURES=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        stored, bytes,
        "{name}: today's encoding differs from the stored fixture; stored events \
         would not read back the same"
    );
}

fn payload_file(event_type: EventType, version: u16) -> String {
    format!("{}.v{version}.bin", event_type.name())
}

#[test]
fn every_event_type_at_its_current_schema_version_has_a_fixture() {
    let samples = one_of_each();
    let types: BTreeSet<EventType> = samples.iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        EventType::ALL.into_iter().collect(),
        "a sample per type"
    );
    for event in samples {
        let event_type = event.event_type();
        let version = event_type.current_schema_version();
        let mut bytes = Vec::new();
        codec::encode_payload(&event, &mut bytes).unwrap();
        check_fixture(&payload_file(event_type, version), &bytes);
        if !blessing() {
            let stored =
                std::fs::read(fixtures_dir().join(payload_file(event_type, version))).unwrap();
            assert_eq!(
                codec::decode_payload(event_type, version, &stored).unwrap(),
                event
            );
        }
    }
}

/// Schema version 1 stored customer data in clear: it still decodes, as
/// [`backchannel_domain::values::Content::Legacy`], and re-encodes to the
/// same bytes.
#[test]
fn the_plaintext_era_versions_still_decode_in_clear() {
    let samples = plaintext_era();
    assert_eq!(samples.len(), 3);
    for event in samples {
        let event_type = event.event_type();
        assert_eq!(event.schema_version(), 1);
        let name = payload_file(event_type, 1);
        let stored = std::fs::read(fixtures_dir().join(&name)).unwrap();
        assert_eq!(
            codec::decode_payload(event_type, 1, &stored).unwrap(),
            event,
            "{name}"
        );
        let mut bytes = Vec::new();
        codec::encode_payload(&event, &mut bytes).unwrap();
        assert_eq!(bytes, stored, "{name}: re-encoded");
    }
}

#[test]
fn customer_data_in_plain_text_is_never_encoded() {
    for mut event in plaintext_era() {
        match &mut event {
            Event::ConversationOpened(e) => {
                e.customer = Content::Plain(e.customer.readable().unwrap().clone());
            }
            Event::MessagePosted(e) => e.body = Content::Plain(e.body.readable().unwrap().clone()),
            Event::PrivateMessagePosted(e) => {
                e.body = Content::Plain(e.body.readable().unwrap().clone());
            }
            _ => unreachable!(),
        }
        let mut bytes = Vec::new();
        let refused = codec::encode_payload(&event, &mut bytes).unwrap_err();
        assert!(refused.to_string().contains("sealed"), "{refused}");
    }
}

#[test]
fn every_payload_fixture_ever_written_still_decodes() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("record.") || name.starts_with("chunk.") {
            continue;
        }
        let (type_name, version) = name
            .strip_suffix(".bin")
            .and_then(|stem| stem.rsplit_once(".v"))
            .unwrap_or_else(|| panic!("unexpected fixture file name {name}"));
        let event_type = EventType::from_name(type_name)
            .unwrap_or_else(|| panic!("{name}: event type {type_name} no longer exists"));
        let version: u16 = version.parse().unwrap();
        let bytes = std::fs::read(fixtures_dir().join(&name)).unwrap();
        let event = codec::decode_payload(event_type, version, &bytes)
            .unwrap_or_else(|err| panic!("{name} no longer decodes: {err}"));
        assert_eq!(event.event_type(), event_type);
        checked += 1;
    }
    assert!(checked >= EventType::ALL.len());
}

/// Three chained records covering both stream kinds and all three actor kinds
/// (the two messages as the plaintext era stored them: these records were
/// pinned before encryption existed).
fn record_chain() -> Vec<(Envelope, Event)> {
    let mut samples = plaintext_era();
    samples.extend(one_of_each());
    let pick = |t: EventType| {
        samples
            .iter()
            .find(|e| e.event_type() == t)
            .unwrap()
            .clone()
    };
    let picks = [
        (EventType::CompanyCreated, Actor::System),
        (
            EventType::MessagePosted,
            Actor::Customer(match pick(EventType::MessagePosted) {
                Event::MessagePosted(m) => m.conversation,
                _ => unreachable!(),
            }),
        ),
        (
            EventType::PrivateMessagePosted,
            Actor::Staff(StaffId::from_bytes([0x5a; 16])),
        ),
    ];
    let mut prev_hash = [0u8; 32];
    let mut chain = Vec::new();
    for (index, (event_type, actor)) in picks.into_iter().enumerate() {
        let n = index as u8 + 1;
        let event = pick(event_type);
        let envelope = Envelope {
            position: u64::from(n),
            stream: event.stream(),
            stream_version: u64::from(n) + 40,
            event_id: EventId::from_bytes([0x10 + n; 16]),
            event_type,
            schema_version: event.schema_version(),
            codec_version: CODEC_VERSION,
            // 2026-01-02T03:04:05.678901Z
            recorded_at: RecordedAt::from_micros(1_767_323_045_678_901 + i64::from(n)),
            actor,
            command_id: CommandId::from_bytes([0x20 + n; 16]),
            correlation_id: CorrelationId::from_bytes([0x30 + n; 16]),
            prev_hash,
        };
        let mut bytes = Vec::new();
        codec::encode_record(&envelope, &event, &mut bytes).unwrap();
        prev_hash = codec::record_hash(&bytes);
        chain.push((envelope, event));
    }
    chain
}

#[test]
fn full_stored_records_are_pinned() {
    let mut prev_hash = [0u8; 32];
    for (envelope, event) in record_chain() {
        let name = format!(
            "record.codec{CODEC_VERSION}.{}.{}.bin",
            envelope.position,
            event.event_type().name()
        );
        let mut bytes = Vec::new();
        codec::encode_record(&envelope, &event, &mut bytes).unwrap();
        check_fixture(&name, &bytes);
        let stored = std::fs::read(fixtures_dir().join(&name)).unwrap();
        let decoded = codec::decode_record(&stored).unwrap();
        assert_eq!(decoded.envelope, envelope, "{name}");
        assert_eq!(decoded.event, event, "{name}");
        assert_eq!(decoded.envelope.prev_hash, prev_hash, "{name}: chain link");
        prev_hash = codec::record_hash(&stored);
    }
}

/// The chunk framing: the three pinned records in one chunk.
#[test]
fn the_chunk_framing_is_pinned() {
    let name = format!("chunk.v{}.3records.bin", codec::CHUNK_FORMAT_VERSION);
    let chain = record_chain();
    let mut chunk = Vec::new();
    codec::begin_chunk(&mut chunk, chain[0].0.position);
    for (envelope, event) in &chain {
        codec::push_chunk_record(&mut chunk, envelope, event).unwrap();
    }
    check_fixture(&name, &chunk);
    let stored = std::fs::read(fixtures_dir().join(&name)).unwrap();
    let records = codec::decode_chunk(&stored).unwrap();
    assert_eq!(
        records.header(),
        codec::ChunkHeader {
            first_position: 1,
            count: 3
        }
    );
    let records: Vec<&[u8]> = records.map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    for ((envelope, event), record) in chain.iter().zip(records) {
        // Each framed record is byte for byte its record fixture.
        let file = format!(
            "record.codec{CODEC_VERSION}.{}.{}.bin",
            envelope.position,
            event.event_type().name()
        );
        assert_eq!(record, std::fs::read(fixtures_dir().join(file)).unwrap());
        assert_eq!(codec::decode_record(record).unwrap().envelope, *envelope);
    }
}
