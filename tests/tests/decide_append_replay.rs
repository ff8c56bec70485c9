//! The foundation end to end: commands decided by `domain`, appended to the real
//! sled log with the decided stream version and the command id, read back after
//! a restart, and folded again into exactly the same state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backchannel_domain::commands::Command;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::*;
use backchannel_domain::model::{Actor, Channel, MessageVisibility, Role, RoutingType};
use backchannel_domain::values::{MessageBody, Name};
use backchannel_domain::{DomainError, State, decide};
use backchannel_eventlog::{AppendError, AppendMeta, ExpectedVersion, Log, StoreSpec};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// What the API will do for every mutation: decide against the current state,
/// append with the version the decision read, fold the events into the state.
/// Opens the sled log at `path` with its key store, as the server does:
/// decided customer data is sealed as it is appended, and opened on reads.
fn open_keyed(path: &std::path::Path) -> Log {
    let wrap = backchannel_eventlog::KeyWrap::from_secret(b"decide-append-replay test secret");
    Log::open_replaying(&StoreSpec::sled(path), 1, Some(&wrap), |_| {
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap()
}

async fn execute(
    log: &Log,
    state: &mut State,
    actor: Actor,
    command: Command,
) -> Result<(), DomainError> {
    let events = decide(state, &command, actor)?;
    if events.is_empty() {
        return Ok(());
    }
    let meta = AppendMeta {
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        actor,
    };
    log.append_to_streams(expectations(state, &command, &events), events.clone(), meta)
        .await
        .expect("no concurrent writer in this test");
    for event in &events {
        state.apply(event);
    }
    Ok(())
}

/// Every stream the decision touched, at the version it read (as the
/// server's desk appends).
fn expectations(
    state: &State,
    command: &Command,
    events: &[Event],
) -> Vec<(StreamId, ExpectedVersion)> {
    let mut streams = vec![command.stream()];
    for event in events {
        if !streams.contains(&event.stream()) {
            streams.push(event.stream());
        }
    }
    streams
        .into_iter()
        .map(|s| (s, ExpectedVersion::Exact(state.stream_version(s))))
        .collect()
}

struct Desk {
    company: CompanyId,
    owner: StaffId,
    admin: StaffId,
    a: StaffId,
    b: StaffId,
    support: GroupId,
    sales: GroupId,
}

async fn build_desk(log: &Log, state: &mut State) -> Desk {
    let desk = Desk {
        company: CompanyId::new(),
        owner: StaffId::new(),
        admin: StaffId::new(),
        a: StaffId::new(),
        b: StaffId::new(),
        support: GroupId::new(),
        sales: GroupId::new(),
    };
    let owner = Actor::Staff(desk.owner);
    let c = desk.company;
    let setup = [
        (
            Actor::System,
            Command::CreateCompany {
                company: c,
                name: name("Acme"),
                widget_key: WidgetKey::new(),
                owner: desk.owner,
                owner_name: name("Olga"),
            },
        ),
        (
            owner,
            Command::AddStaff {
                company: c,
                staff: desk.admin,
                name: name("Adam"),
                role: Role::Admin,
            },
        ),
        (
            owner,
            Command::AddStaff {
                company: c,
                staff: desk.a,
                name: name("Ann"),
                role: Role::Agent,
            },
        ),
        (
            owner,
            Command::AddStaff {
                company: c,
                staff: desk.b,
                name: name("Ben"),
                role: Role::Agent,
            },
        ),
        (
            owner,
            Command::CreateGroup {
                company: c,
                group: desk.support,
                name: name("Support"),
                routing: RoutingType::Broadcast,
            },
        ),
        (
            owner,
            Command::CreateGroup {
                company: c,
                group: desk.sales,
                name: name("Sales"),
                routing: RoutingType::RoundRobin,
            },
        ),
        (
            owner,
            Command::UpdatePrivacySettings {
                company: c,
                private_conversations_enabled: true,
                new_conversations_private: true,
            },
        ),
    ];
    for (actor, command) in setup {
        execute(log, state, actor, command).await.unwrap();
    }
    for (group, staff) in [
        (desk.support, desk.a),
        (desk.support, desk.b),
        (desk.sales, desk.a),
        (desk.sales, desk.b),
    ] {
        execute(
            log,
            state,
            owner,
            Command::AddGroupMember {
                company: c,
                group,
                staff,
            },
        )
        .await
        .unwrap();
    }
    desk
}

#[tokio::test]
async fn decided_events_survive_a_restart_and_replay_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_keyed(dir.path());
    let mut state = State::default();
    let desk = build_desk(&log, &mut state).await;

    for i in 0..20 {
        let conversation = ConversationId::new();
        let group = if i % 2 == 0 { desk.support } else { desk.sales };
        let channel = [
            Channel::Chat,
            Channel::Social,
            Channel::Email,
            Channel::Call,
        ][i % 4];
        let customer = Actor::Customer(conversation);
        execute(
            &log,
            &mut state,
            customer,
            Command::OpenConversation {
                company: desk.company,
                conversation,
                group,
                channel,
                customer: name("Carla"),
                first_message: None,
            },
        )
        .await
        .unwrap();
        if group == desk.support {
            execute(
                &log,
                &mut state,
                Actor::Staff(desk.b),
                Command::AssignConversation {
                    conversation,
                    assignee: desk.b,
                },
            )
            .await
            .unwrap();
        }
        execute(
            &log,
            &mut state,
            customer,
            Command::SendMessage {
                conversation,
                message: MessageId::new(),
                visibility: MessageVisibility::Public,
                body: MessageBody::parse("Where is my parcel?").unwrap(),
            },
        )
        .await
        .unwrap();
        let whisper = execute(
            &log,
            &mut state,
            Actor::Staff(desk.admin),
            Command::SendMessage {
                conversation,
                message: MessageId::new(),
                visibility: MessageVisibility::Private,
                body: MessageBody::parse("Check the courier first").unwrap(),
            },
        )
        .await;
        if matches!(channel, Channel::Email | Channel::Call) {
            assert_eq!(whisper, Err(DomainError::PrivateMessagesUnsupported));
        } else {
            whisper.unwrap();
        }
        if i % 3 == 0 {
            execute(
                &log,
                &mut state,
                Actor::Staff(desk.admin),
                Command::CloseConversation { conversation },
            )
            .await
            .unwrap();
        }
    }
    let head = log.head();
    log.close().unwrap();

    let reopened = open_keyed(dir.path());
    assert_eq!(reopened.head(), head);
    let recorded: Vec<_> = reopened.scan(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(recorded.len() as u64, head);
    let replayed = State::from_events(recorded.iter().map(|r| &r.event));
    assert_eq!(replayed, state);
    for r in &recorded {
        assert!(r.envelope.stream_version <= replayed.stream_version(r.envelope.stream));
        assert_eq!(r.envelope.stream, r.event.stream());
    }
    reopened.verify().unwrap();
}

#[tokio::test]
async fn two_agents_taking_the_same_conversation_one_wins_the_other_learns_it_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_keyed(dir.path());
    let mut state = State::default();
    let desk = build_desk(&log, &mut state).await;
    let conversation = ConversationId::new();
    execute(
        &log,
        &mut state,
        Actor::Customer(conversation),
        Command::OpenConversation {
            company: desk.company,
            conversation,
            group: desk.support,
            channel: Channel::Chat,
            customer: name("Carla"),
            first_message: None,
        },
    )
    .await
    .unwrap();

    // Both decide against the same state, then race to append.
    let stream = backchannel_domain::StreamId::Conversation(conversation);
    let version = state.stream_version(stream);
    let take = |agent: StaffId| {
        let command = Command::AssignConversation {
            conversation,
            assignee: agent,
        };
        let events = decide(&state, &command, Actor::Staff(agent)).unwrap();
        let meta = AppendMeta {
            command_id: CommandId::new(),
            correlation_id: CorrelationId::new(),
            actor: Actor::Staff(agent),
        };
        log.append(stream, ExpectedVersion::Exact(version), events, meta)
    };
    let (ann, ben) = tokio::join!(take(desk.a), take(desk.b));
    let (winner, loser, lost) = match (ann, ben) {
        (Ok(_), Err(e)) => (desk.a, desk.b, e),
        (Err(e), Ok(_)) => (desk.b, desk.a, e),
        other => panic!("exactly one append must win, got {other:?}"),
    };
    assert!(matches!(lost, AppendError::WrongExpectedVersion { .. }));

    // The loser's command, decided again on the state that now includes the
    // winner's event, is a CONFLICT: the conversation is private and the
    // loser can no longer view it, so it does not say who won (SPEC 7).
    let state = State::from_events(
        log.scan(1)
            .map(|r| r.unwrap().event)
            .collect::<Vec<_>>()
            .iter(),
    );
    let retry = decide(
        &state,
        &Command::AssignConversation {
            conversation,
            assignee: loser,
        },
        Actor::Staff(loser),
    );
    assert_eq!(
        retry,
        Err(DomainError::Conflict {
            current_assignee: None
        })
    );
    assert_ne!(winner, loser);
    assert_eq!(
        state.access(loser, conversation),
        backchannel_domain::Access::Restricted
    );
}

/// SPEC section 7, on several nodes: two openings in a round-robin group
/// decided against the same state (two processes sharing the log) pick the
/// same member, and the turn each records on the company stream makes one
/// append lose; decided again, the loser gets the next member. No per-process
/// lock is involved here, only the log's multi-stream expectations.
#[tokio::test]
async fn two_round_robin_openings_decided_at_once_cannot_take_the_same_turn() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_keyed(dir.path());
    let mut state = State::default();
    let desk = build_desk(&log, &mut state).await;
    let open = |conversation| Command::OpenConversation {
        company: desk.company,
        conversation,
        group: desk.sales,
        channel: Channel::Chat,
        customer: name("Carla"),
        first_message: None,
    };
    let assignee_of = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::ConversationAssigned(a) => Some(a.assignee),
            _ => None,
        })
    };
    let (one, two) = (ConversationId::new(), ConversationId::new());
    let decided: Vec<(Command, Vec<Event>)> = [one, two]
        .into_iter()
        .map(|c| {
            let command = open(c);
            let events = decide(&state, &command, Actor::Customer(c)).unwrap();
            (command, events)
        })
        .collect();
    assert_eq!(assignee_of(&decided[0].1), assignee_of(&decided[1].1));
    let append = |(command, events): &(Command, Vec<Event>), actor| {
        log.append_to_streams(
            expectations(&state, command, events),
            events.clone(),
            AppendMeta {
                command_id: CommandId::new(),
                correlation_id: CorrelationId::new(),
                actor,
            },
        )
    };
    let (first, second) = tokio::join!(
        append(&decided[0], Actor::Customer(one)),
        append(&decided[1], Actor::Customer(two)),
    );
    let (winner, loser) = match (first, second) {
        (Ok(_), Err(e)) => ((one, &decided[0].1), (two, e)),
        (Err(e), Ok(_)) => ((two, &decided[1].1), (one, e)),
        other => panic!("exactly one opening must take the turn, got {other:?}"),
    };
    assert!(
        matches!(loser.1, AppendError::WrongExpectedVersion { stream, .. } if stream == StreamId::Company(desk.company)),
        "{:?}",
        loser.1
    );
    for event in winner.1 {
        state.apply(event);
    }
    let again = decide(&state, &open(loser.0), Actor::Customer(loser.0)).unwrap();
    assert_ne!(assignee_of(&again), assignee_of(winner.1), "the next turn");
    execute(&log, &mut state, Actor::Customer(loser.0), open(loser.0))
        .await
        .unwrap();
    log.verify().unwrap();
}
