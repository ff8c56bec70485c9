//! SPEC sections 3, 4 and 8 as one table: every role against every query,
//! mutation and subscription, with the answer each must get.
//!
//! The table below is the test. Each cell runs against its own state: reads
//! share conversations nothing else touches, and every cell that changes
//! something (mutations, and the subscriptions it takes a mutation to feed)
//! gets a fresh conversation. Every mismatching cell is printed, then the
//! test fails.
//!
//! The conversation `C` is a CHAT in Support (BROADCAST), private (the company
//! switch is on), assigned to `assignee`, with `invitee` (a Sales agent)
//! invited into the room. Closed rows use `C` closed by its assignee; the
//! queued row a fresh private conversation waiting in Support.
//!
//! Answers: `ok` (succeeded); `yes`/`no` (succeeded, and `C` is / is not in
//! the list); `other` (a customer call that succeeded on the caller's own
//! conversation, not on `C`); `quiet` (a subscription that got nothing); or
//! an error code: UNAUTH, FORBID, RESTR (RESTRICTED_ACCESS), NOTFND, CONFL;
//! ERASED (allowed, but the content asked for was erased). The `.erased` rows
//! run against a conversation the owner erased (SPEC section 12): whoever may
//! see it still gets `ERASED` for its content, and everyone else the same
//! refusal as before the erasure.
//! Subscriptions answer with their first frame about `C` after a mutation
//! that should reach them (a whisper by the owner, or a public message by the
//! assignee). A subscription is `quiet` only when a marker that must reach it
//! (an action after the mutation, on the same subscription) arrives first: a
//! subscription's frames come in commit order, so a leak cannot come later.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use serde_json::{Value, json};

use crate::support::*;

const MATRIX: &str = "
operation              owner  admin  sup-in sup-out member non-member assignee invitee history deactivated other-admin customer other-customer
conversation           ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
conversation.closed    ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      ok      UNAUTH      NOTFND      UNAUTH   UNAUTH
conversation.erased    ERASED ERASED ERASED RESTR   RESTR  RESTR      ERASED   ERASED  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
timeline.erased        ERASED ERASED ERASED RESTR   RESTR  RESTR      ERASED   ERASED  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
node                   ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
node.closed            ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      ok      UNAUTH      NOTFND      UNAUTH   UNAUTH
conversations          yes    yes    yes    no      no     no         yes      yes     no      UNAUTH      no          UNAUTH   UNAUTH
conversations.closed   yes    yes    yes    no      no     no         yes      yes     yes     UNAUTH      no          UNAUTH   UNAUTH
enquiryOverview        yes    yes    yes    FORBID  no     FORBID     yes      FORBID  no      UNAUTH      NOTFND      UNAUTH   UNAUTH
notifications          no     no     yes    no      yes    no         yes      yes     yes     UNAUTH      no          UNAUTH   UNAUTH
auditTrail             ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      NOTFND      UNAUTH   UNAUTH
accessLog              ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      NOTFND      UNAUTH   UNAUTH
assignConversation     ok     ok     ok     RESTR   CONFL  RESTR      ok       FORBID  CONFL   UNAUTH      NOTFND      UNAUTH   UNAUTH
assign.queued          ok     ok     ok     RESTR   ok     RESTR      ok       RESTR   ok      UNAUTH      NOTFND      UNAUTH   UNAUTH
inviteToRoom           ok     ok     ok     RESTR   RESTR  RESTR      ok       FORBID  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
sendMessage.public     FORBID FORBID FORBID RESTR   RESTR  RESTR      ok       ok      RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
sendMessage.private    ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
setConversationPrivacy ok     ok     FORBID RESTR   RESTR  RESTR      FORBID   FORBID  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
closeConversation      ok     ok     ok     RESTR   RESTR  RESTR      ok       FORBID  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
reopenConversation     ok     ok     ok     RESTR   RESTR  RESTR      ok       FORBID  FORBID  UNAUTH      NOTFND      UNAUTH   UNAUTH
eraseConversation      ok     ok     FORBID RESTR   RESTR  RESTR      FORBID   FORBID  RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
updatePrivacySettings  ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      ok          UNAUTH   UNAUTH
setWidgetOrigins       ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      ok          UNAUTH   UNAUTH
createGroup            ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      ok          UNAUTH   UNAUTH
addStaff               ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      ok          UNAUTH   UNAUTH
issueStaffToken        ok     ok     FORBID FORBID  FORBID FORBID     FORBID   FORBID  FORBID  UNAUTH      NOTFND      UNAUTH   UNAUTH
conversationEvents     ok     ok     ok     RESTR   RESTR  RESTR      ok       ok      RESTR   UNAUTH      NOTFND      UNAUTH   UNAUTH
notifications.live     quiet  quiet  quiet  quiet   quiet  quiet      ok       ok      quiet   UNAUTH      quiet       UNAUTH   UNAUTH
customer.conversation  UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ok       other
customer.erased        UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ERASED   other
customer.node          UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ok       NOTFND
customer.sendMessage   UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ok       other
customer.close         UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ok       other
customer.messages      UNAUTH UNAUTH UNAUTH UNAUTH  UNAUTH UNAUTH     UNAUTH   UNAUTH  UNAUTH  UNAUTH      UNAUTH      ok       quiet
";

/// The columns, in the table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Owner,
    Admin,
    SupervisorIn,
    SupervisorOut,
    Member,
    NonMember,
    Assignee,
    Invitee,
    History,
    Deactivated,
    OtherAdmin,
    Customer,
    OtherCustomer,
}

const ROLES: [(&str, Role); 13] = [
    ("owner", Role::Owner),
    ("admin", Role::Admin),
    ("sup-in", Role::SupervisorIn),
    ("sup-out", Role::SupervisorOut),
    ("member", Role::Member),
    ("non-member", Role::NonMember),
    ("assignee", Role::Assignee),
    ("invitee", Role::Invitee),
    ("history", Role::History),
    ("deactivated", Role::Deactivated),
    ("other-admin", Role::OtherAdmin),
    ("customer", Role::Customer),
    ("other-customer", Role::OtherCustomer),
];

/// The state a row's cells run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixture {
    /// The shared handling `C` (read-only rows).
    Shared,
    /// The shared closed conversation (read-only rows).
    SharedClosed,
    /// A fresh handling `C` per cell.
    Handling,
    /// A fresh closed `C` per cell.
    Closed,
    /// A fresh queued private conversation per cell.
    Queued,
    /// The shared handling `C`, erased by the owner (read-only rows).
    SharedErased,
}

const OPERATIONS: [(&str, Fixture); 34] = [
    ("conversation", Fixture::Shared),
    ("conversation.closed", Fixture::SharedClosed),
    ("conversation.erased", Fixture::SharedErased),
    ("timeline.erased", Fixture::SharedErased),
    ("node", Fixture::Shared),
    ("node.closed", Fixture::SharedClosed),
    ("conversations", Fixture::Shared),
    ("conversations.closed", Fixture::SharedClosed),
    ("enquiryOverview", Fixture::Shared),
    ("notifications", Fixture::Shared),
    ("auditTrail", Fixture::Shared),
    ("accessLog", Fixture::Shared),
    ("assignConversation", Fixture::Handling),
    ("assign.queued", Fixture::Queued),
    ("inviteToRoom", Fixture::Handling),
    ("sendMessage.public", Fixture::Handling),
    ("sendMessage.private", Fixture::Handling),
    ("setConversationPrivacy", Fixture::Handling),
    ("closeConversation", Fixture::Handling),
    ("reopenConversation", Fixture::Closed),
    ("eraseConversation", Fixture::Handling),
    ("updatePrivacySettings", Fixture::Shared),
    ("setWidgetOrigins", Fixture::Shared),
    ("createGroup", Fixture::Shared),
    ("addStaff", Fixture::Shared),
    ("issueStaffToken", Fixture::Shared),
    ("conversationEvents", Fixture::Handling),
    ("notifications.live", Fixture::Handling),
    ("customer.conversation", Fixture::Shared),
    ("customer.erased", Fixture::SharedErased),
    ("customer.node", Fixture::Shared),
    ("customer.sendMessage", Fixture::Handling),
    ("customer.close", Fixture::Handling),
    ("customer.messages", Fixture::Handling),
];

const ERASE: &str = "mutation($c: ID!) { eraseConversation(conversationId: $c, reason: \"asked\") { conversationId } }";

/// The table as (operation, role) → expected answer; panics on a malformed table.
fn expected() -> BTreeMap<(&'static str, Role), String> {
    let mut lines = MATRIX.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let names: Vec<&str> = ROLES.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        header[1..],
        names[..],
        "the header names every role in order"
    );
    let mut cells = BTreeMap::new();
    let mut rows = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), ROLES.len() + 1, "a cell per role: {line}");
        let (operation, _) = OPERATIONS
            .iter()
            .find(|(name, _)| *name == words[0])
            .unwrap_or_else(|| panic!("unknown operation {}", words[0]));
        rows.push(*operation);
        for ((_, role), answer) in ROLES.iter().zip(&words[1..]) {
            cells.insert((*operation, *role), (*answer).to_owned());
        }
    }
    let all: Vec<&str> = OPERATIONS.iter().map(|(name, _)| *name).collect();
    assert_eq!(rows, all, "one row per operation, in order");
    cells
}

/// One company with a staff member for every role, plus another company.
struct World<'s> {
    server: &'s TestServer,
    acme: Company<'s>,
    globex: Company<'s>,
    staff: BTreeMap<Role, Member>,
    support: String,
    /// Acme's other group, where notification markers are opened.
    sales: String,
    /// Globex's group, where the other admin's notification markers are opened.
    elsewhere: String,
}

/// One conversation `C` in the state a row needs, and its customer.
struct Case {
    c: String,
    customer: Customer,
    /// Another conversation's customer (same company, same group).
    other: Customer,
}

impl World<'_> {
    fn member(&self, role: Role) -> &Member {
        &self.staff[&role]
    }

    /// `C` as its fixture says: opened by a customer, taken by the assignee,
    /// the invitee in the room; closed if asked.
    async fn case(&self, fixture: Fixture, n: usize) -> Case {
        let customer = self
            .acme
            .start(
                &self.support,
                &format!("Cell Customer {n}"),
                "CHAT",
                "Hello",
            )
            .await;
        let other = self
            .acme
            .start(&self.support, &format!("Other Customer {n}"), "CHAT", "Hi")
            .await;
        let c = customer.conversation.clone();
        if fixture != Fixture::Queued {
            let assignee = self.member(Role::Assignee);
            let invitee = self.member(Role::Invitee);
            ok(
                self.server,
                assignee,
                ASSIGN,
                json!({ "c": c, "s": assignee.id }),
            )
            .await;
            ok(
                self.server,
                assignee,
                INVITE,
                json!({ "c": c, "s": invitee.id }),
            )
            .await;
            ok(
                self.server,
                assignee,
                SEND,
                json!({ "c": c, "b": "Hello from staff", "v": "PUBLIC" }),
            )
            .await;
            ok(
                self.server,
                self.member(Role::Owner),
                SEND,
                json!({ "c": c, "b": "A whisper", "v": "PRIVATE" }),
            )
            .await;
        }
        if matches!(fixture, Fixture::Closed | Fixture::SharedClosed) {
            ok(
                self.server,
                self.member(Role::Assignee),
                CLOSE,
                json!({ "c": c }),
            )
            .await;
        }
        Case { c, customer, other }
    }

    /// The token a role presents.
    fn token<'a>(&'a self, role: Role, case: &'a Case) -> &'a str {
        match role {
            Role::Customer => &case.customer.token,
            Role::OtherCustomer => &case.other.token,
            staff => &self.member(staff).token,
        }
    }

    /// Whether `C` is erased, as the owner sees it.
    async fn owners_view_erased(&self, case: &Case) -> bool {
        let seen = self
            .server
            .staff(
                &self.member(Role::Owner).token,
                "query($c: ID!) { conversation(id: $c) { erased } }",
                json!({ "c": case.c }),
            )
            .await;
        seen.body["data"]["conversation"]["erased"] == true
    }

    /// A notification marker for `role`: a fresh conversation in the
    /// role's company, into which someone else invites them (an invitation
    /// notifies the invited). Returns the marker conversation's id; a role
    /// that cannot be notified (a customer, a deactivated member) gets none,
    /// and its subscription was refused anyway.
    async fn notification_marker(&self, role: Role, n: usize) -> String {
        let (company, group) = match role {
            Role::Customer | Role::OtherCustomer => return String::new(),
            Role::OtherAdmin => (&self.globex, &self.elsewhere),
            _ => (&self.acme, &self.sales),
        };
        let marker = company
            .start(group, &format!("Marker Customer {n}"), "CHAT", "Marker")
            .await
            .conversation;
        let inviter = match role {
            Role::Owner => self.member(Role::Admin),
            _ => &company.owner,
        };
        // Not `ok`: a refused invitation (a deactivated invitee) only means
        // no marker, and the subscription's refusal answers first.
        self.server
            .staff(
                &inviter.token,
                INVITE,
                json!({ "c": marker, "s": self.member(role).id }),
            )
            .await;
        marker
    }

    /// The owner's view of `C` (to see what a customer call changed).
    async fn owners_view(&self, case: &Case) -> Value {
        let seen = ok(
            self.server,
            self.member(Role::Owner),
            CONVERSATION,
            json!({ "id": case.c }),
        )
        .await;
        seen["conversation"].clone()
    }
}

fn short(code: &str) -> String {
    match code {
        "UNAUTHENTICATED" => "UNAUTH",
        "FORBIDDEN" => "FORBID",
        "RESTRICTED_ACCESS" => "RESTR",
        "NOT_FOUND" => "NOTFND",
        "CONFLICT" => "CONFL",
        other => other,
    }
    .to_owned()
}

/// `ok`, or the short error code.
fn answer(reply: &Reply) -> String {
    match reply.code() {
        Some(code) => short(code),
        None if reply.status == 200 && reply.body["data"].is_object() => "ok".to_owned(),
        None => format!("HTTP{}", reply.status),
    }
}

/// `yes`/`no`: whether the answer's ids include `C`; or the error.
fn lists(reply: &Reply, c: &str, ids: impl FnOnce(&Value) -> Vec<String>) -> String {
    match answer(reply).as_str() {
        "ok" if ids(reply.data()).iter().any(|id| id == c) => "yes".to_owned(),
        "ok" => "no".to_owned(),
        error => error.to_owned(),
    }
}

/// How long a cell waits for its marker before it answers `no marker` (a
/// bound for a broken subscription, not a window a late frame could miss).
const MARKER_PATIENCE: Duration = Duration::from_secs(5);

/// A subscription's first answer about `C` after `trigger` ran, or `quiet`
/// when the marker comes first. `mark` runs after the trigger and must
/// produce a frame on this same subscription; it returns what identifies that
/// frame to `is_marker`. A subscription's frames follow commit order, so
/// anything the trigger sent it arrives before the marker. Frames about other
/// conversations (other cells open conversations in the same groups
/// meanwhile, and other cells' markers) are skipped.
async fn live<M>(
    mut subscription: Subscription,
    c: &str,
    trigger: impl std::future::Future<Output = ()>,
    mark: M,
    is_marker: fn(&Value, &str) -> bool,
) -> String
where
    M: std::future::Future<Output = String>,
{
    // A refused subscription has answered while it was opened.
    if let Some(frame @ (Frame::Errors(_) | Frame::Complete | Frame::Closed(_))) =
        subscription.received().await
    {
        return frame_answer(frame);
    }
    trigger.await;
    let marker = mark.await;
    loop {
        match subscription.next_within(MARKER_PATIENCE).await {
            Some(Frame::Data(data)) if is_marker(&data, &marker) => return "quiet".to_owned(),
            Some(Frame::Data(data)) if !about(&data, c) => continue,
            Some(frame) => return frame_answer(frame),
            None => return "no marker".to_owned(),
        }
    }
}

/// A notification about the marker conversation `marker`.
fn notifies_about(data: &Value, marker: &str) -> bool {
    data["notifications"]["conversationId"] == marker
}

/// A timeline item with the body `marker`.
fn timeline_body(data: &Value, marker: &str) -> bool {
    data["conversationEvents"]["body"] == marker
}

/// A customer's message with the body `marker`.
fn message_body(data: &Value, marker: &str) -> bool {
    data["messages"]["body"] == marker
}

/// Is a subscription's data about `C`? (Timeline items carry no id: a
/// `conversationEvents` stream is about its conversation by construction.)
fn about(data: &Value, c: &str) -> bool {
    match data["notifications"]["conversationId"].as_str() {
        Some(id) => id == c,
        None => true,
    }
}

fn frame_answer(frame: Frame) -> String {
    match frame {
        Frame::Data(_) => "ok".to_owned(),
        Frame::Errors(_) => short(frame.code().unwrap_or("no code")),
        Frame::Complete => "ended".to_owned(),
        // graphql-transport-ws refuses a missing or bad token at
        // `connection_init` with 4403: the table's UNAUTHENTICATED.
        Frame::Closed(4403) => short("UNAUTHENTICATED"),
        Frame::Closed(code) => format!("closed {code}"),
    }
}

async fn run_cell(
    world: &World<'_>,
    shared: &[Case; 3],
    operation: &str,
    fixture: Fixture,
    role: Role,
    n: usize,
) -> String {
    let fresh;
    let case = match fixture {
        Fixture::Shared => &shared[0],
        Fixture::SharedClosed => &shared[1],
        Fixture::SharedErased => &shared[2],
        _ => {
            fresh = world.case(fixture, n).await;
            &fresh
        }
    };
    let server = world.server;
    let token = world.token(role, case);
    let c = case.c.as_str();
    let staff = |query: &'static str, variables: Value| server.staff(token, query, variables);
    let customer = |query: &'static str| server.customer(Some(token), query, json!({}));
    match operation {
        "conversation" | "conversation.closed" | "conversation.erased" => {
            answer(&staff(CONVERSATION, json!({ "id": c })).await)
        }
        "timeline.erased" => answer(
            &staff(
                "query($c: ID!) { conversation(id: $c) { timeline(first: 50) { edges { node { ... on PublicMessage { body } ... on PrivateMessage { body } } } } } }",
                json!({ "c": c }),
            )
            .await,
        ),
        // The same conversation through `node(id)`: the same answers.
        "node" | "node.closed" => {
            let reply = staff(NODE, json!({ "id": c })).await;
            match answer(&reply).as_str() {
                "ok" if reply.data()["node"]["id"] == c => "ok".to_owned(),
                "ok" => format!("other {}", reply.text),
                error => error.to_owned(),
            }
        }
        "conversations" | "conversations.closed" => {
            lists(&staff(LIST, json!({})).await, c, |d| listed(d).0)
        }
        "enquiryOverview" => lists(&staff(OVERVIEW, json!({ "g": world.support })).await, c, |d| {
            ["queued", "handling", "closed"]
                .iter()
                .flat_map(|col| column(d, col).0)
                .collect()
        }),
        "notifications" => lists(&staff(NOTIFICATIONS, json!({})).await, c, notified_about),
        "auditTrail" => answer(
            &staff(
                "query($c: ID!) { auditTrail(conversationId: $c) { eventType } }",
                json!({ "c": c }),
            )
            .await,
        ),
        "accessLog" => answer(
            &staff(
                "query($c: ID) { accessLog(conversationId: $c) { edges { cursor } } }",
                json!({ "c": c }),
            )
            .await,
        ),
        "assignConversation" | "assign.queued" => answer(
            &staff(ASSIGN, json!({ "c": c, "s": world.member(Role::Member).id })).await,
        ),
        "inviteToRoom" => answer(
            &staff(INVITE, json!({ "c": c, "s": world.member(Role::NonMember).id })).await,
        ),
        "sendMessage.public" => answer(
            &staff(SEND, json!({ "c": c, "b": "Public words", "v": "PUBLIC" })).await,
        ),
        "sendMessage.private" => answer(
            &staff(SEND, json!({ "c": c, "b": "Private words", "v": "PRIVATE" })).await,
        ),
        "setConversationPrivacy" => {
            answer(&staff(SET_PRIVACY, json!({ "c": c, "p": false })).await)
        }
        "closeConversation" => answer(&staff(CLOSE, json!({ "c": c })).await),
        // On a fresh conversation per cell: `ok` only if it is then erased.
        "eraseConversation" => {
            let reply = staff(ERASE, json!({ "c": c })).await;
            let erased = world.owners_view_erased(case).await;
            match answer(&reply).as_str() {
                "ok" if erased => "ok".to_owned(),
                "ok" => "other".to_owned(),
                error if erased => format!("{error} but erased"),
                error => error.to_owned(),
            }
        }
        "reopenConversation" => answer(
            &staff(
                "mutation($c: ID!) { reopenConversation(conversationId: $c) { conversationId } }",
                json!({ "c": c }),
            )
            .await,
        ),
        // The values Acme already has: an allowed call changes nothing there.
        "updatePrivacySettings" => answer(
            &staff(
                "mutation { updatePrivacySettings(privateConversationsEnabled: true, newConversationsPrivate: true) { company { id } } }",
                json!({}),
            )
            .await,
        ),
        // The list every company has until it sets one: allowed calls change nothing.
        "setWidgetOrigins" => answer(
            &staff(
                "mutation { setWidgetOrigins(origins: []) { company { id } } }",
                json!({}),
            )
            .await,
        ),
        "createGroup" => answer(
            &staff(
                "mutation($n: String!) { createGroup(name: $n, routing: BROADCAST) { group { id } } }",
                json!({ "n": format!("Cell group {n}") }),
            )
            .await,
        ),
        "addStaff" => answer(
            &staff(
                "mutation($n: String!) { addStaff(name: $n, role: AGENT) { staff { id } } }",
                json!({ "n": format!("Cell hire {n}") }),
            )
            .await,
        ),
        "issueStaffToken" => answer(
            &staff(
                "mutation($s: ID!) { issueStaffToken(staffId: $s) { token } }",
                json!({ "s": world.member(Role::Member).id }),
            )
            .await,
        ),
        "conversationEvents" => {
            let subscription = server
                .subscribe_staff(token, EVENTS_LIVE, json!({ "c": c }))
                .await;
            // The marker: a public message, which everyone who may follow
            // `C` sees.
            let mark = async {
                let marker = format!("Marker {n}");
                ok(
                    server,
                    world.member(Role::Assignee),
                    SEND,
                    json!({ "c": c, "b": marker, "v": "PUBLIC" }),
                )
                .await;
                marker
            };
            live(
                subscription,
                c,
                async {
                    ok(
                        server,
                        world.member(Role::Owner),
                        SEND,
                        json!({ "c": c, "b": "Live whisper", "v": "PRIVATE" }),
                    )
                    .await;
                },
                mark,
                timeline_body,
            )
            .await
        }
        // The owner's whisper notifies the room (the assignee and the
        // invitee), and nobody else.
        "notifications.live" => {
            let subscription = server
                .subscribe_staff(token, NOTIFICATIONS_LIVE, json!({}))
                .await;
            live(
                subscription,
                c,
                async {
                    ok(
                        server,
                        world.member(Role::Owner),
                        SEND,
                        json!({ "c": c, "b": "Live whisper", "v": "PRIVATE" }),
                    )
                    .await;
                },
                world.notification_marker(role, n),
                notifies_about,
            )
            .await
        }
        "customer.conversation" | "customer.erased" => {
            let reply = customer(CUSTOMER_CONVERSATION).await;
            match answer(&reply).as_str() {
                "ok" if reply.data()["conversation"]["id"] == c => "ok".to_owned(),
                "ok" => "other".to_owned(),
                error => error.to_owned(),
            }
        }
        // `C` by id through the customer's `node`: only its own customer.
        "customer.node" => {
            let reply = server
                .customer(Some(token), CUSTOMER_NODE, json!({ "id": c }))
                .await;
            match answer(&reply).as_str() {
                "ok" if reply.data()["node"]["id"] == c => "ok".to_owned(),
                "ok" => format!("other {}", reply.text),
                error => error.to_owned(),
            }
        }
        "customer.sendMessage" => {
            let before = world.owners_view(case).await["publicMessageCount"].clone();
            let reply = customer("mutation { sendMessage(body: \"More words\") { message { id } } }").await;
            let after = world.owners_view(case).await["publicMessageCount"].clone();
            match answer(&reply).as_str() {
                "ok" if before != after => "ok".to_owned(),
                "ok" => "other".to_owned(),
                error => error.to_owned(),
            }
        }
        "customer.close" => {
            let reply = customer("mutation { closeConversation { conversation { id } } }").await;
            let status = world.owners_view(case).await["status"].clone();
            match answer(&reply).as_str() {
                "ok" if status == "CLOSED" => "ok".to_owned(),
                "ok" => "other".to_owned(),
                error => error.to_owned(),
            }
        }
        "customer.messages" => {
            let subscription = server
                .subscribe_customer(token, CUSTOMER_MESSAGES_LIVE, json!({}))
                .await;
            // The marker: the subscriber writes in their own conversation.
            let mark = async {
                let marker = format!("Marker {n}");
                server
                    .customer(
                        Some(token),
                        "mutation($b: String!) { sendMessage(body: $b) { message { id } } }",
                        json!({ "b": marker }),
                    )
                    .await;
                marker
            };
            live(
                subscription,
                c,
                async {
                    ok(
                        server,
                        world.member(Role::Assignee),
                        SEND,
                        json!({ "c": c, "b": "Live words", "v": "PUBLIC" }),
                    )
                    .await;
                },
                mark,
                message_body,
            )
            .await
        }
        other => panic!("no runner for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_the_answer_the_table_says_on_every_operation() {
    let expected = expected();
    let (mut server, created) = TestServer::with_companies(&["Acme", "Globex"]).await;
    let acme = Company::new(&server, &created[0]);
    let globex = Company::new(&server, &created[1]);

    let mut staff = BTreeMap::new();
    staff.insert(Role::Owner, acme.owner.clone());
    staff.insert(Role::Admin, acme.add_staff("Ada Admin", "ADMIN").await);
    staff.insert(
        Role::SupervisorIn,
        acme.add_staff("Sofia Supervisor", "SUPERVISOR").await,
    );
    staff.insert(
        Role::SupervisorOut,
        acme.add_staff("Sam Supervisor", "SUPERVISOR").await,
    );
    staff.insert(Role::Member, acme.add_staff("Mia Member", "AGENT").await);
    staff.insert(
        Role::NonMember,
        acme.add_staff("Nick Nonmember", "AGENT").await,
    );
    staff.insert(
        Role::Assignee,
        acme.add_staff("Alice Assignee", "AGENT").await,
    );
    staff.insert(Role::Invitee, acme.add_staff("Ivan Invitee", "AGENT").await);
    staff.insert(
        Role::History,
        acme.add_staff("Hank Historian", "AGENT").await,
    );
    staff.insert(
        Role::Deactivated,
        acme.add_staff("Dora Departed", "AGENT").await,
    );
    staff.insert(
        Role::OtherAdmin,
        globex.add_staff("Xavier Globex", "ADMIN").await,
    );
    let support = acme
        .add_group(
            "Support",
            "BROADCAST",
            &[
                &staff[&Role::Member],
                &staff[&Role::Assignee],
                &staff[&Role::History],
                &staff[&Role::Deactivated],
            ],
        )
        .await;
    let sales = acme
        .add_group(
            "Sales",
            "BROADCAST",
            &[&staff[&Role::NonMember], &staff[&Role::Invitee]],
        )
        .await;
    acme.add_supervisor(&support, &staff[&Role::SupervisorIn])
        .await;
    acme.add_supervisor(&sales, &staff[&Role::SupervisorOut])
        .await;
    acme.grant_enquiry_history(&staff[&Role::History]).await;
    acme.deactivate(&staff[&Role::Deactivated]).await;
    acme.privacy(&acme.owner, true, true).await;
    // Globex has a group and a conversation of its own.
    let elsewhere = globex.add_group("Support", "BROADCAST", &[]).await;
    globex
        .start(&elsewhere, "Globex Customer", "CHAT", "Hi")
        .await;

    let world = World {
        server: &server,
        acme,
        globex,
        staff,
        support,
        sales,
        elsewhere,
    };
    let erased = world.case(Fixture::SharedErased, 2).await;
    ok(
        &server,
        world.member(Role::Owner),
        ERASE,
        json!({ "c": erased.c }),
    )
    .await;
    let shared = [
        world.case(Fixture::Shared, 0).await,
        world.case(Fixture::SharedClosed, 1).await,
        erased,
    ];

    let cells: Vec<(usize, &str, Fixture, Role)> = OPERATIONS
        .iter()
        .flat_map(|(operation, fixture)| {
            ROLES
                .iter()
                .map(move |(_, role)| (*operation, *fixture, *role))
        })
        .enumerate()
        .map(|(n, (operation, fixture, role))| (n + 3, operation, fixture, role))
        .collect();
    let world = &world;
    let shared = &shared;
    let actual: BTreeMap<(&str, Role), String> = stream::iter(cells)
        .map(|(n, operation, fixture, role)| async move {
            let got = run_cell(world, shared, operation, fixture, role, n).await;
            ((operation, role), got)
        })
        .buffer_unordered(12)
        .collect()
        .await;

    let mut mismatches = Vec::new();
    for (operation, _) in OPERATIONS {
        for (name, role) in ROLES {
            let want = &expected[&(operation, role)];
            let got = &actual[&(operation, role)];
            if want != got {
                mismatches.push(format!("{operation} × {name}: expected {want}, got {got}"));
            }
        }
    }
    if !mismatches.is_empty() {
        let mut table = String::new();
        for (operation, _) in OPERATIONS {
            table.push_str(&format!("{operation:<22}"));
            for (_, role) in ROLES {
                table.push_str(&format!(" {:<6}", actual[&(operation, role)]));
            }
            table.push('\n');
        }
        panic!(
            "{} cells differ from the table:\n{}\n\nwhat the server answered:\n{table}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
    server.stop().await;
}
