//! A company set up the way its owner and admins would: `init`, then GraphQL
//! mutations for staff, tokens, groups and privacy settings.

use backchannel_api::admin::Initialized;
use serde_json::{Value, json};

use backchannel_testkit::{Reply, TestServer};

/// A staff member and a token for them.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub token: String,
}

/// A customer and the token scoped to their conversation.
#[derive(Debug, Clone)]
pub struct Customer {
    pub conversation: String,
    pub token: String,
}

/// A company seen through its owner's token.
pub struct Company<'s> {
    pub server: &'s TestServer,
    pub widget_key: String,
    pub owner: Member,
}

impl<'s> Company<'s> {
    pub fn new(server: &'s TestServer, created: &Initialized) -> Self {
        Company {
            server,
            widget_key: created.widget_key.to_string(),
            owner: Member {
                id: created.owner.to_string(),
                token: created.owner_token.clone(),
            },
        }
    }

    /// Runs a staff operation as the owner; panics on any error.
    pub async fn as_owner(&self, what: &str, query: &str, variables: Value) -> Value {
        let reply = self.server.staff(&self.owner.token, query, variables).await;
        reply.ok(what).clone()
    }

    /// Adds a staff member (`AGENT`, `SUPERVISOR`, `ADMIN`) and issues their token.
    pub async fn add_staff(&self, name: &str, role: &str) -> Member {
        let added = self
            .as_owner(
                "addStaff",
                "mutation($n: String!, $r: Role!) { addStaff(name: $n, role: $r) { staff { id } } }",
                json!({ "n": name, "r": role }),
            )
            .await;
        let id = added["addStaff"]["staff"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let issued = self
            .as_owner(
                "issueStaffToken",
                "mutation($s: ID!) { issueStaffToken(staffId: $s) { token } }",
                json!({ "s": id }),
            )
            .await;
        Member {
            id,
            token: issued["issueStaffToken"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }

    /// Creates a group (`BROADCAST` or `ROUND_ROBIN`) with these members, in order.
    pub async fn add_group(&self, name: &str, routing: &str, members: &[&Member]) -> String {
        let created = self
            .as_owner(
                "createGroup",
                "mutation($n: String!, $r: RoutingType!) { createGroup(name: $n, routing: $r) { group { id } } }",
                json!({ "n": name, "r": routing }),
            )
            .await;
        let group = created["createGroup"]["group"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for member in members {
            self.as_owner(
                "addGroupMember",
                "mutation($g: ID!, $s: ID!) { addGroupMember(groupId: $g, staffId: $s) { group { id } } }",
                json!({ "g": group, "s": member.id }),
            )
            .await;
        }
        group
    }

    pub async fn add_supervisor(&self, group: &str, supervisor: &Member) {
        self.as_owner(
            "addGroupSupervisor",
            "mutation($g: ID!, $s: ID!) { addGroupSupervisor(groupId: $g, staffId: $s) { group { id } } }",
            json!({ "g": group, "s": supervisor.id }),
        )
        .await;
    }

    pub async fn grant_enquiry_history(&self, staff: &Member) {
        self.as_owner(
            "grantPermission",
            "mutation($s: ID!) { grantPermission(staffId: $s, permission: ENQUIRY_HISTORY) { staff { id } } }",
            json!({ "s": staff.id }),
        )
        .await;
    }

    pub async fn deactivate(&self, staff: &Member) {
        self.as_owner(
            "deactivateStaff",
            "mutation($s: ID!) { deactivateStaff(staffId: $s) { staff { id } } }",
            json!({ "s": staff.id }),
        )
        .await;
    }

    /// `updatePrivacySettings` by `by` (an owner or admin).
    pub async fn privacy(&self, by: &Member, enabled: bool, new_private: bool) {
        self.server
            .staff(
                &by.token,
                "mutation($e: Boolean!, $n: Boolean!) { updatePrivacySettings(privateConversationsEnabled: $e, newConversationsPrivate: $n) { company { id } } }",
                json!({ "e": enabled, "n": new_private }),
            )
            .await
            .ok("updatePrivacySettings");
    }

    /// A customer starts a chat (or another channel) from the widget.
    pub async fn start(&self, group: &str, name: &str, channel: &str, message: &str) -> Customer {
        let reply = self
            .server
            .customer(
                None,
                "mutation($k: ID!, $g: ID!, $n: String!, $c: Channel!, $m: String) {
                    startConversation(widgetKey: $k, groupId: $g, customerName: $n, channel: $c, message: $m) {
                        token conversation { id } } }",
                json!({ "k": self.widget_key, "g": group, "n": name, "c": channel, "m": message }),
            )
            .await;
        let started = &reply.ok("startConversation")["startConversation"];
        Customer {
            conversation: started["conversation"]["id"].as_str().unwrap().to_owned(),
            token: started["token"].as_str().unwrap().to_owned(),
        }
    }
}

/// Runs a staff operation that must succeed.
pub async fn ok(server: &TestServer, who: &Member, query: &str, variables: Value) -> Value {
    let reply: Reply = server.staff(&who.token, query, variables).await;
    reply.ok(query).clone()
}

pub const CONVERSATION: &str = "query($id: ID!) { conversation(id: $id) {
    id status private effectivelyPrivate accessRule customerName
    assignee { id } publicMessageCount privateMessageCount } }";

/// `node(id)`: any object by its id, as the viewer may see it.
pub const NODE: &str = "query($id: ID!) { node(id: $id) { id
    ... on Conversation { status } ... on Staff { name } ... on Group { name } ... on Company { name } } }";

/// The customer schema's `node(id)`: only the caller's own conversation.
pub const CUSTOMER_NODE: &str =
    "query($id: ID!) { node(id: $id) { id ... on CustomerConversation { status } } }";

pub const ASSIGN: &str = "mutation($c: ID!, $s: ID!, $k: String) {
    assignConversation(conversationId: $c, assigneeId: $s, idempotencyKey: $k) { conversationId conversation { status } } }";

pub const INVITE: &str = "mutation($c: ID!, $s: ID!) { inviteToRoom(conversationId: $c, staffId: $s) { conversationId } }";

pub const SEND: &str = "mutation($c: ID!, $b: String!, $v: MessageVisibility!, $k: String) {
    sendMessage(conversationId: $c, body: $b, visibility: $v, idempotencyKey: $k) {
        message { __typename ... on PublicMessage { id body } ... on PrivateMessage { id body } } } }";

pub const SET_PRIVACY: &str = "mutation($c: ID!, $p: Boolean!) {
    setConversationPrivacy(conversationId: $c, private: $p) { conversationId } }";

pub const CLOSE: &str =
    "mutation($c: ID!) { closeConversation(conversationId: $c) { conversationId } }";

/// Ids of the conversations a staff member is listed, and the total count.
pub const LIST: &str = "query($f: ConversationFilter) { conversations(first: 50, filter: $f) {
    totalCount edges { node { id } } } }";

pub const OVERVIEW: &str = "query($g: ID!) { enquiryOverview(groupId: $g, first: 10) {
    queued { count items { id } } handling { count items { id } } closed { count items { id } } } }";

pub const NOTIFICATIONS: &str =
    "{ notifications(first: 50) { unreadCount edges { node { id kind conversationId } } } }";

pub const NOTIFICATIONS_LIVE: &str = "subscription { notifications { id kind conversationId } }";

pub const EVENTS_LIVE: &str = "subscription($c: ID!) { conversationEvents(conversationId: $c) {
    __typename ... on PublicMessage { body } ... on PrivateMessage { body } ... on SystemEvent { kind } } }";

pub const CUSTOMER_CONVERSATION: &str =
    "{ conversation { id status messages { edges { cursor node { id author body } } } } }";

pub const CUSTOMER_MESSAGES_LIVE: &str = "subscription { messages { id author body cursor } }";

/// The ids a `conversations` answer lists, and its `totalCount`.
pub fn listed(data: &Value) -> (Vec<String>, u64) {
    let connection = &data["conversations"];
    let ids = connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, connection["totalCount"].as_u64().unwrap())
}

/// The ids of one column of an `enquiryOverview` answer, and its count.
pub fn column(data: &Value, name: &str) -> (Vec<String>, u64) {
    let column = &data["enquiryOverview"][name];
    let ids = column["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, column["count"].as_u64().unwrap())
}

/// The conversation ids of a staff member's listed notifications.
pub fn notified_about(data: &Value) -> Vec<String> {
    data["notifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["conversationId"].as_str().unwrap().to_owned())
        .collect()
}
