//! The scenario log the replay tool's tests and goldens use: one company,
//! every rule R1–R6 in play, fixed ids and times (so outputs are stable),
//! decided by `domain::decide` and written through the log's import path.

#![allow(dead_code, unreachable_pub)]
// Test support: a failure here is a broken test setup, so panicking is right.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backchannel_domain::commands::Command as DomainCommand;
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use backchannel_domain::model::{Actor, Channel, MessageVisibility, Permission, Role, RoutingType};
use backchannel_domain::values::{MessageBody, Name};
use backchannel_eventlog::SledEventLog;
use backchannel_projections::time::parse_rfc3339;
use backchannel_replay_tool::recorder::Recorder;

/// A fixed UUIDv7-shaped id ending in `n`.
pub const fn id(n: u8) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, n]
}

pub const ACME: CompanyId = CompanyId::from_bytes(id(1));
pub const OLIVIA_OWNER: StaffId = StaffId::from_bytes(id(10));
pub const ADAM_ADMIN: StaffId = StaffId::from_bytes(id(11));
pub const SUE_SUPERVISOR: StaffId = StaffId::from_bytes(id(12));
pub const ANN_AGENT: StaffId = StaffId::from_bytes(id(13));
pub const BOB_AGENT: StaffId = StaffId::from_bytes(id(14));
/// An agent of Support holding ENQUIRY_HISTORY.
pub const CAT_HISTORY: StaffId = StaffId::from_bytes(id(15));
/// An agent of Sales without ENQUIRY_HISTORY.
pub const DAN_AGENT: StaffId = StaffId::from_bytes(id(16));
pub const SUPPORT: GroupId = GroupId::from_bytes(id(20));
pub const SALES: GroupId = GroupId::from_bytes(id(21));
/// Private chat in Support: queued, assigned to Ann, public, private, company
/// switch off and on, closed.
pub const C1: ConversationId = ConversationId::from_bytes(id(30));
/// Email in Sales (round robin → Dan), closed.
pub const C2: ConversationId = ConversationId::from_bytes(id(31));
/// Social in Support, still queued (private).
pub const C3: ConversationId = ConversationId::from_bytes(id(32));

/// Instants of the scenario, for `access --at`.
pub const T_QUEUED: &str = "2025-03-01T10:01:00Z";
pub const T_ASSIGNED: &str = "2025-03-01T10:06:00Z";
pub const T_MADE_PUBLIC: &str = "2025-03-01T10:21:00Z";
pub const T_PRIVATE_AGAIN: &str = "2025-03-01T10:26:00Z";
pub const T_SWITCH_OFF: &str = "2025-03-01T10:31:00Z";
pub const T_SWITCH_ON: &str = "2025-03-01T10:36:00Z";
pub const T_CLOSED: &str = "2025-03-01T10:41:00Z";

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}

/// The scenario's stored records, in order.
pub fn scenario_records() -> Vec<Vec<u8>> {
    scenario_recorder().take_records()
}

/// The recorder holding the scenario, to record more after it.
pub fn scenario_recorder() -> Recorder {
    let mut rec = Recorder::new(7);
    let mut run = |at: &str, actor: Actor, command: DomainCommand| {
        let at = parse_rfc3339(at).unwrap();
        let events = rec.run(at, actor, &command).unwrap();
        assert!(events > 0, "{command:?} recorded nothing");
    };
    let owner = Actor::Staff(OLIVIA_OWNER);
    let admin = Actor::Staff(ADAM_ADMIN);
    run(
        "2025-03-01T09:00:00Z",
        Actor::System,
        DomainCommand::CreateCompany {
            company: ACME,
            name: name("Acme"),
            widget_key: WidgetKey::from_bytes(id(2)),
            owner: OLIVIA_OWNER,
            owner_name: name("Olivia Owner"),
        },
    );
    let staff = [
        (ADAM_ADMIN, "Adam Admin", Role::Admin),
        (SUE_SUPERVISOR, "Sue Supervisor", Role::Supervisor),
        (ANN_AGENT, "Ann Agent", Role::Agent),
        (BOB_AGENT, "Bob Agent", Role::Agent),
        (CAT_HISTORY, "Cat Historian", Role::Agent),
        (DAN_AGENT, "Dan Agent", Role::Agent),
    ];
    for (i, (id, label, role)) in staff.into_iter().enumerate() {
        run(
            &format!("2025-03-01T09:01:0{i}Z"),
            owner,
            DomainCommand::AddStaff {
                company: ACME,
                staff: id,
                name: name(label),
                role,
            },
        );
    }
    run(
        "2025-03-01T09:02:00Z",
        owner,
        DomainCommand::GrantPermission {
            company: ACME,
            staff: CAT_HISTORY,
            permission: Permission::EnquiryHistory,
        },
    );
    for (group, label, routing) in [
        (SUPPORT, "Support", RoutingType::Broadcast),
        (SALES, "Sales", RoutingType::RoundRobin),
    ] {
        run(
            "2025-03-01T09:03:00Z",
            admin,
            DomainCommand::CreateGroup {
                company: ACME,
                group,
                name: name(label),
                routing,
            },
        );
    }
    for (group, member) in [
        (SUPPORT, ANN_AGENT),
        (SUPPORT, BOB_AGENT),
        (SUPPORT, CAT_HISTORY),
        (SALES, DAN_AGENT),
    ] {
        run(
            "2025-03-01T09:04:00Z",
            admin,
            DomainCommand::AddGroupMember {
                company: ACME,
                group,
                staff: member,
            },
        );
    }
    run(
        "2025-03-01T09:05:00Z",
        admin,
        DomainCommand::AddGroupSupervisor {
            company: ACME,
            group: SUPPORT,
            staff: SUE_SUPERVISOR,
        },
    );
    let privacy = |enabled| DomainCommand::UpdatePrivacySettings {
        company: ACME,
        private_conversations_enabled: enabled,
        new_conversations_private: true,
    };
    run("2025-03-01T09:10:00Z", owner, privacy(true));
    run(
        "2025-03-01T10:00:00Z",
        Actor::Customer(C1),
        DomainCommand::OpenConversation {
            company: ACME,
            conversation: C1,
            group: SUPPORT,
            channel: Channel::Chat,
            customer: name("Carla Customer"),
            first_message: None,
        },
    );
    run(
        "2025-03-01T10:05:00Z",
        Actor::Staff(ANN_AGENT),
        DomainCommand::AssignConversation {
            conversation: C1,
            assignee: ANN_AGENT,
        },
    );
    let message = |n: u8, visibility, text: &str| DomainCommand::SendMessage {
        conversation: C1,
        message: MessageId::from_bytes(id(n)),
        visibility,
        body: body(text),
    };
    run(
        "2025-03-01T10:10:00Z",
        Actor::Customer(C1),
        message(40, MessageVisibility::Public, "My parcel never arrived."),
    );
    run(
        "2025-03-01T10:11:00Z",
        Actor::Staff(ANN_AGENT),
        message(
            41,
            MessageVisibility::Public,
            "Sorry to hear that, let me check, \"order\" 42?",
        ),
    );
    run(
        "2025-03-01T10:12:00Z",
        Actor::Staff(SUE_SUPERVISOR),
        message(
            42,
            MessageVisibility::Private,
            "Offer a refund, she is a regular.",
        ),
    );
    run(
        "2025-03-01T10:13:00Z",
        Actor::Staff(ANN_AGENT),
        message(43, MessageVisibility::Private, "Will do,\nthanks."),
    );
    run(
        "2025-03-01T10:20:00Z",
        admin,
        DomainCommand::SetConversationPrivacy {
            conversation: C1,
            private: false,
        },
    );
    run(
        "2025-03-01T10:25:00Z",
        admin,
        DomainCommand::SetConversationPrivacy {
            conversation: C1,
            private: true,
        },
    );
    run("2025-03-01T10:30:00Z", owner, privacy(false));
    run("2025-03-01T10:35:00Z", owner, privacy(true));
    run(
        "2025-03-01T10:40:00Z",
        Actor::Staff(ANN_AGENT),
        DomainCommand::CloseConversation { conversation: C1 },
    );
    run(
        "2025-03-01T11:00:00Z",
        Actor::Staff(DAN_AGENT),
        DomainCommand::OpenConversation {
            company: ACME,
            conversation: C2,
            group: SALES,
            channel: Channel::Email,
            customer: name("Eve Emailer"),
            first_message: None,
        },
    );
    run(
        "2025-03-01T11:05:00Z",
        Actor::Staff(DAN_AGENT),
        DomainCommand::SendMessage {
            conversation: C2,
            message: MessageId::from_bytes(id(44)),
            visibility: MessageVisibility::Public,
            body: body("Your invoice is attached."),
        },
    );
    run(
        "2025-03-01T11:10:00Z",
        Actor::Staff(DAN_AGENT),
        DomainCommand::CloseConversation { conversation: C2 },
    );
    run(
        "2025-03-01T12:00:00Z",
        Actor::Customer(C3),
        DomainCommand::OpenConversation {
            company: ACME,
            conversation: C3,
            group: SUPPORT,
            channel: Channel::Social,
            customer: name("Sam Social"),
            first_message: None,
        },
    );
    rec
}

/// A stopped server's store holding the scenario, and its export, in a temp dir.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub file: PathBuf,
}

pub fn scenario() -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let records = scenario_records()
        .into_iter()
        .map(Ok::<_, std::convert::Infallible>);
    let log = SledEventLog::import(&store, records).unwrap();
    log.verify().unwrap();
    log.close().unwrap();
    let file = dir.path().join("scenario.bclog");
    let out = tool(&["export", "--data-dir", s(&store), "--out", s(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    Scenario { dir, store, file }
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs the real binary.
/// Runs the tool. A store this process has just closed can still look in
/// use for a moment: its `LOCK` is an flock, which lives as long as any copy
/// of its descriptor, and a sibling test forking a child in that instant
/// hands the child a copy until its `exec` closes it (under load, a while).
/// So "in use" is retried for up to 5 s; anything else is answered at once.
/// [`tool_once`] is for the tests that expect "in use".
pub fn tool(args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = tool_once(args);
        let in_use = code(&out) == 3 && stderr(&out).contains("in use by a running server");
        if !in_use || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs the tool once.
pub fn tool_once(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replay-tool"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Whether `BLESS_GOLDEN` asks to rewrite the committed files: only `1` does, unset
/// or empty leaves them, and any other value is refused (so `0` cannot bless).
pub fn blessing() -> bool {
    match std::env::var_os("BLESS_GOLDEN") {
        None => false,
        Some(v) if v.is_empty() => false,
        Some(v) if v == "1" => true,
        Some(v) => panic!(
            "BLESS_GOLDEN must be 1 or unset, got `{}`",
            v.to_string_lossy()
        ),
    }
}

/// Compares `actual` with `fixtures/golden/<name>`; `BLESS_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/golden")
        .join(name);
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden {}; run with BLESS_GOLDEN=1 to write it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from its golden (re-bless with BLESS_GOLDEN=1 if intended):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}
