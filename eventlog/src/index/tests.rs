//! Unit tests of the command index's merges and of the opening pass in
//! slices.

use super::load::load_in_slices;
use super::*;
use crate::envelope::RecordedEvent;
use crate::error::ReplayError;
use backchannel_domain::values::Content;

/// Across several merges, every command is found at its first position,
/// a repeated command keeps the position it had, and unknown ones are not
/// found.
#[test]
fn the_command_index_finds_every_command_across_merges() {
    let commands: Vec<CommandId> = (0..3 * MIN_MERGE + 17).map(|_| CommandId::new()).collect();
    let mut index = CommandIndex::from_pairs(
        commands[..100]
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| [(c, i as u64 + 1), (c, i as u64 + 1000)])
            .collect(),
    );
    assert_eq!(index.len(), 100);
    for (i, &command) in commands.iter().enumerate().skip(100) {
        index.insert(command, i as u64 + 1);
        // A retry of an earlier command changes nothing.
        index.insert(commands[i / 2], 999_999);
    }
    assert!(
        index.sorted.len() > 3 * MIN_MERGE / 2,
        "merged at least once"
    );
    assert_eq!(index.len(), commands.len());
    for (i, command) in commands.iter().enumerate() {
        assert_eq!(index.get(command), Some(i as u64 + 1), "command {i}");
    }
    assert!(index.sorted.is_sorted());
    assert_eq!(index.get(&CommandId::new()), None);
}

/// The opening pass in slices (sled reopened after every chunk here)
/// finds the same head and indexes as one pass, and visits every event
/// once, in order.
#[test]
fn a_pass_in_slices_equals_one_pass() {
    use crate::envelope::{AppendMeta, ExpectedVersion};
    use backchannel_domain::events::{Event, MessageAuthor, MessagePosted};
    use backchannel_domain::ids::{ConversationId, CorrelationId, MessageId};
    use backchannel_domain::model::Actor;
    use backchannel_domain::values::MessageBody;

    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let conversations: Vec<ConversationId> = (0..3).map(|_| ConversationId::new()).collect();
    let log = crate::SledEventLog::open(dir.path()).unwrap();
    // One append (so at least one chunk) per round and conversation,
    // of one or three events.
    for round in 0..6u64 {
        for &conversation in &conversations {
            let events = (0..1 + 2 * (round % 2))
                .map(|k| {
                    Event::MessagePosted(MessagePosted {
                        conversation,
                        message: MessageId::new(),
                        author: MessageAuthor::Customer,
                        body: Content::Legacy(
                            MessageBody::parse(&format!("message {round}.{k}")).unwrap(),
                        ),
                    })
                })
                .collect();
            let meta = AppendMeta {
                command_id: CommandId::new(),
                correlation_id: CorrelationId::new(),
                actor: Actor::System,
            };
            runtime
                .block_on(log.append(
                    StreamId::Conversation(conversation),
                    ExpectedVersion::Any,
                    events,
                    meta,
                ))
                .unwrap();
        }
    }
    let head = log.head();
    log.close().unwrap();

    let opened = crate::store::open(dir.path()).unwrap();
    let whole = load(dir.path(), &opened.db, opened.recorded, None).unwrap();
    let mut visited = Vec::new();
    let mut visit = |recorded: RecordedEvent| {
        visited.push(recorded.envelope.position);
        Ok::<(), ReplayError>(())
    };
    let replay = Replay {
        from: 1,
        after: None,
        visit: &mut visit,
    };
    let (sliced, opened) = load_in_slices(dir.path(), opened, Some(replay), 1).unwrap();
    drop(opened);

    assert_eq!(sliced.head.position, head);
    assert_eq!(sliced.head.position, whole.head.position);
    assert_eq!(sliced.head.hash, whole.head.hash);
    assert_eq!(visited, (1..=head).collect::<Vec<_>>());
    assert_eq!(sliced.indexes.stats(), whole.indexes.stats());
    assert_eq!(sliced.indexes.streams, whole.indexes.streams);
    assert_eq!(
        sliced.indexes.commands.sorted,
        whole.indexes.commands.sorted
    );
}
