//! Crypto-shredding (SPEC section 12) through the log: customer data is
//! sealed under its conversation's key as it is appended, opened as it is
//! read, and shows as erased everywhere once the key is destroyed, while the
//! records and their chain stay as they were.

use backchannel_domain::events::{
    ConversationErased, ConversationOpened, Event, MessageAuthor, MessagePosted,
    PrivateMessagePosted, StreamId,
};
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
use backchannel_domain::model::Channel;
use backchannel_domain::values::{Content, ErasureReason, MessageBody, Name};
use backchannel_eventlog::{AppendError, ExpectedVersion, KeyWrap, Log, RecordedEvent, StoreSpec};

use super::{close, open, verify};
use crate::support::{conversation, meta};

const CUSTOMER: &str = "Zelda Quintessence-Marlowe";
const PUBLIC: &str = "my card number is 4111-0000-PLAINTEXT-PUBLIC";
const PRIVATE: &str = "whisper: she sounds upset PLAINTEXT-PRIVATE";

fn wrap() -> KeyWrap {
    KeyWrap::from_secret(b"conformance tests' server secret, 32+ bytes")
}

/// Opens the log with its key store, replaying every event into the result.
pub async fn open_keyed(spec: &StoreSpec) -> (Log, Vec<RecordedEvent>) {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let log = Log::open_replaying(&spec, 1, Some(&wrap()), |recorded| {
            seen.push(recorded);
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok::<_, backchannel_eventlog::OpenError>((log, seen))
    })
    .await
    .unwrap()
    .unwrap()
}

fn conversation_events(id: ConversationId) -> Vec<Event> {
    vec![
        Event::ConversationOpened(ConversationOpened {
            company: CompanyId::from_bytes([1; 16]),
            conversation: id,
            group: GroupId::from_bytes([2; 16]),
            channel: Channel::Chat,
            customer: Content::Plain(Name::parse(CUSTOMER).unwrap()),
            private: true,
        }),
        Event::MessagePosted(MessagePosted {
            conversation: id,
            message: MessageId::new(),
            author: MessageAuthor::Customer,
            body: Content::Plain(MessageBody::parse(PUBLIC).unwrap()),
        }),
        Event::PrivateMessagePosted(PrivateMessagePosted {
            conversation: id,
            message: MessageId::new(),
            author: StaffId::from_bytes([3; 16]),
            body: Content::Plain(MessageBody::parse(PRIVATE).unwrap()),
        }),
    ]
}

/// The customer data `events` show: name and bodies, as their contents.
fn contents(events: &[RecordedEvent]) -> Vec<Content<String>> {
    fn text<T: AsRef<str>>(c: &Content<T>) -> Content<String> {
        match c {
            Content::Plain(v) => Content::Plain(v.as_ref().to_owned()),
            Content::Legacy(v) => Content::Legacy(v.as_ref().to_owned()),
            Content::Sealed(s) => Content::Sealed(s.clone()),
            Content::Erased => Content::Erased,
        }
    }
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ConversationOpened(e) => Some(text(&e.customer)),
            Event::MessagePosted(e) => Some(text(&e.body)),
            Event::PrivateMessagePosted(e) => Some(text(&e.body)),
            _ => None,
        })
        .collect()
}

fn plain() -> Vec<Content<String>> {
    [CUSTOMER, PUBLIC, PRIVATE]
        .map(|t| Content::Plain(t.to_owned()))
        .to_vec()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn raw(log: &Log) -> Vec<Vec<u8>> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || {
        log.raw_records(1, u64::MAX)
            .map(|r| r.unwrap().1)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap()
}

async fn scanned(log: &Log) -> Vec<RecordedEvent> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.scan(1).map(|r| r.unwrap()).collect())
        .await
        .unwrap()
}

pub async fn customer_data_is_sealed_when_stored_and_opened_on_every_read(spec: StoreSpec) {
    let (log, _) = open_keyed(&spec).await;
    let id = conversation(41);
    let outcome = log
        .append(
            StreamId::Conversation(id),
            ExpectedVersion::NoStream,
            conversation_events(id),
            meta(),
        )
        .await
        .unwrap();
    // No plaintext in the stored records: the chain covers the ciphertext.
    let records = raw(&log).await;
    assert_eq!(records.len(), 3);
    for record in &records {
        for text in [CUSTOMER, PUBLIC, PRIVATE] {
            assert!(!contains(record, text), "{text} stored in clear");
        }
    }
    // Every read path opens it.
    let read = log.read_all(1, 10).await.unwrap();
    assert_eq!(contents(&read), plain(), "read_all");
    let stream = log
        .read_stream(StreamId::Conversation(id), 1)
        .await
        .unwrap();
    assert_eq!(contents(&stream), plain(), "read_stream");
    assert_eq!(contents(&scanned(&log).await), plain(), "scan");
    let mut tail = log.tail(1);
    let mut tailed = Vec::new();
    for _ in 0..3 {
        tailed.push(tail.next().await.unwrap().unwrap());
    }
    assert_eq!(contents(&tailed), plain(), "tail");
    drop(tail);
    assert_eq!(verify(&log).await.events, outcome.last_position);
    close(log).await;

    // Reopened with its keys: the catch-up sees it opened.
    let (log, replayed) = open_keyed(&spec).await;
    assert_eq!(contents(&replayed), plain(), "replay at open");
    close(log).await;

    // Without its key store, a reader sees it sealed: never plaintext.
    let log = open(&spec).await;
    let read = log.read_all(1, 10).await.unwrap();
    assert!(
        contents(&read)
            .iter()
            .all(|c| matches!(c, Content::Sealed(_))),
        "{:?}",
        contents(&read)
    );
    close(log).await;
}

pub async fn an_erasure_destroys_the_key_so_every_read_shows_it_erased(spec: StoreSpec) {
    let (log, _) = open_keyed(&spec).await;
    let id = conversation(42);
    let kept = conversation(43);
    for c in [id, kept] {
        log.append(
            StreamId::Conversation(c),
            ExpectedVersion::NoStream,
            conversation_events(c),
            meta(),
        )
        .await
        .unwrap();
    }
    let before = raw(&log).await;
    let mut tail = log.tail(before.len() as u64 + 1);
    log.append(
        StreamId::Conversation(id),
        ExpectedVersion::Exact(3),
        vec![Event::ConversationErased(ConversationErased {
            conversation: id,
            erased_by: StaffId::from_bytes([3; 16]),
            reason: ErasureReason::parse("GDPR Article 17").unwrap(),
        })],
        meta(),
    )
    .await
    .unwrap();
    assert!(matches!(
        tail.next().await.unwrap().unwrap().event,
        Event::ConversationErased(_)
    ));
    drop(tail);
    // The stored records did not change: the chain still verifies.
    assert_eq!(raw(&log).await[..before.len()], before[..]);
    assert_eq!(verify(&log).await.events, 7);
    let erased = vec![Content::Erased; 3];
    let of = |events: Vec<RecordedEvent>, c: ConversationId| -> Vec<RecordedEvent> {
        events
            .into_iter()
            .filter(|r| r.envelope.stream == StreamId::Conversation(c))
            .collect()
    };
    let read = log.read_all(1, 10).await.unwrap();
    assert_eq!(contents(&of(read.clone(), id)), erased, "read_all");
    assert_eq!(contents(&of(read, kept)), plain(), "the other conversation");
    let stream = log
        .read_stream(StreamId::Conversation(id), 1)
        .await
        .unwrap();
    assert_eq!(contents(&stream), erased, "read_stream");
    assert_eq!(contents(&of(scanned(&log).await, id)), erased, "scan");
    let mut tail = log.tail(1);
    let mut tailed = Vec::new();
    for _ in 0..7 {
        tailed.push(tail.next().await.unwrap().unwrap());
    }
    assert_eq!(contents(&of(tailed, id)), erased, "tail");
    drop(tail);
    // No new content can be sealed for it: its key is gone for good.
    let refused = log
        .append(
            StreamId::Conversation(id),
            ExpectedVersion::Any,
            vec![conversation_events(id).remove(1)],
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, AppendError::Keys(_)), "{refused:?}");
    assert_eq!(log.head(), 7, "nothing appended");
    close(log).await;

    let (log, replayed) = open_keyed(&spec).await;
    assert_eq!(
        contents(&of(replayed.clone(), id)),
        erased,
        "replay at open"
    );
    assert_eq!(contents(&of(replayed, kept)), plain());
    close(log).await;
}

pub async fn a_log_without_its_key_store_refuses_plain_text(spec: StoreSpec) {
    let log = open(&spec).await;
    let id = conversation(44);
    let refused = log
        .append(
            StreamId::Conversation(id),
            ExpectedVersion::NoStream,
            conversation_events(id),
            meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, AppendError::NoKeyStore), "{refused:?}");
    assert_eq!(log.head(), 0, "nothing appended");
    close(log).await;
}
