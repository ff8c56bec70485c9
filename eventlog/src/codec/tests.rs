//! Unit tests of the record format: round trips, truncation, garbage and
//! chunk framing.

use super::*;
use backchannel_domain::samples::one_of_each;

fn envelope_for(event: &Event, position: u64) -> Envelope {
    Envelope {
        position,
        stream: event.stream(),
        stream_version: position,
        event_id: EventId::from_bytes([7; 16]),
        event_type: event.event_type(),
        schema_version: event.schema_version(),
        codec_version: CODEC_VERSION,
        recorded_at: RecordedAt::from_micros(-5),
        actor: Actor::Customer(ConversationId::from_bytes([3; 16])),
        command_id: CommandId::from_bytes([1; 16]),
        correlation_id: CorrelationId::from_bytes([2; 16]),
        prev_hash: [9; 32],
    }
}

fn encoded(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(&envelope_for(event, 42), event, &mut out).unwrap();
    out
}

#[test]
fn every_sample_round_trips() {
    for event in one_of_each() {
        let bytes = encoded(&event);
        let decoded = decode_record(&bytes).unwrap();
        assert_eq!(decoded.event, event);
        assert_eq!(decoded.envelope, envelope_for(&event, 42));
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for event in one_of_each() {
        let bytes = encoded(&event);
        for len in 0..bytes.len() {
            assert!(decode_record(&bytes[..len]).is_err(), "{len} bytes decoded");
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let event = &one_of_each()[0];
    let mut bytes = encoded(event);
    bytes.push(0);
    assert!(matches!(
        decode_record(&bytes),
        Err(CodecError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn unknown_codec_version_type_and_schema_are_named() {
    let event = &one_of_each()[0];
    let mut bytes = encoded(event);
    bytes[0] = 9;
    assert_eq!(
        decode_record(&bytes),
        Err(CodecError::UnknownCodecVersion(9))
    );

    let mut bytes = encoded(event);
    bytes[140] = 7;
    assert_eq!(
        decode_record(&bytes),
        Err(CodecError::UnknownSchemaVersion {
            event_type: "CompanyCreated",
            version: 7
        })
    );

    let mut bytes = encoded(event);
    bytes[142] = b'X';
    assert!(matches!(
        decode_record(&bytes),
        Err(CodecError::UnknownEventType(name)) if name == "XompanyCreated"
    ));
}

#[test]
fn garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let template = encoded(&one_of_each()[18]);
    for _ in 0..20_000 {
        let mut bytes = template.clone();
        let flips = rng.random_range(1..8);
        for _ in 0..flips {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        let _ = decode_record(&bytes);
        let len = rng.random_range(0..300);
        let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let _ = decode_record(&noise);
    }
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating_it() {
    // A MessagePosted payload whose body length claims far more than the limit.
    let mut payload = vec![0u8; 16 + 16];
    payload.push(1); // MessageAuthor::Customer
    payload.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let err = decode_payload(EventType::MessagePosted, 1, &payload).unwrap_err();
    assert!(matches!(err, CodecError::BadPayload { .. }), "{err}");
}

fn chunk_of_samples() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut chunk = Vec::new();
    begin_chunk(&mut chunk, 42);
    let mut records = Vec::new();
    for (n, event) in one_of_each().iter().enumerate() {
        let envelope = envelope_for(event, 42 + n as u64);
        let range = push_chunk_record(&mut chunk, &envelope, event).unwrap();
        records.push(chunk[range].to_vec());
    }
    (chunk, records)
}

#[test]
fn a_chunk_round_trips_its_records() {
    let (chunk, records) = chunk_of_samples();
    let decoded = decode_chunk(&chunk).unwrap();
    assert_eq!(decoded.header().first_position, 42);
    assert_eq!(decoded.header().count as usize, records.len());
    let read: Vec<&[u8]> = decoded.map(Result::unwrap).collect();
    assert_eq!(read, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let mut raw = Vec::new();
    begin_chunk(&mut raw, 42);
    for record in &records {
        push_chunk_raw(&mut raw, record).unwrap();
    }
    assert_eq!(raw, chunk);
}

#[test]
fn every_chunk_truncation_is_an_error_not_a_panic() {
    let (chunk, _) = chunk_of_samples();
    for len in 0..chunk.len() {
        let outcome = decode_chunk(&chunk[..len])
            .and_then(|records| records.collect::<Result<Vec<_>, _>>().map(|_| ()));
        assert!(outcome.is_err(), "{len} bytes read as a whole chunk");
        let mut offset = CHUNK_HEADER_LEN;
        while let Ok(range) = chunk_record_at(&chunk[..len], offset) {
            offset = range.end;
        }
    }
    let mut extra = chunk.clone();
    extra.push(0);
    assert!(decode_chunk(&extra).unwrap().any(|r| r.is_err()));
}
