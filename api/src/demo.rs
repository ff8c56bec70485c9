//! The demo company (`serve --demo`), from `fixtures/demo/demo.json`.
//!
//! Every step is a domain command run through the desk, exactly like a
//! mutation, with an idempotency key derived from its place in the fixture.
//! Loading again (or after an interrupted load) re-runs the same commands,
//! which the log recognises and answers without appending: idempotent.

use std::sync::Arc;

use backchannel_domain::Command;
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use backchannel_domain::model::{Actor, Channel, MessageVisibility, Permission, Role, RoutingType};
use backchannel_domain::values::{MessageBody, Name, ValueError};
use serde::Deserialize;

use crate::auth::{CustomerIdentity, StaffIdentity, Tokens};
use crate::desk::Desk;
use crate::error::ApiError;

/// The fixture, compiled in so `serve --demo` works from any directory.
pub const DEMO_JSON: &str = include_str!("../../fixtures/demo/demo.json");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo fixture is malformed: {0}")]
    Fixture(#[from] serde_json::Error),
    #[error("the demo fixture has an invalid value: {0}")]
    Value(#[from] ValueError),
    #[error("step {step} of the demo failed: {source}")]
    Step {
        step: String,
        #[source]
        source: ApiError,
    },
    #[error("cannot mint the demo tokens")]
    Token,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fixture {
    company: FixtureCompany,
    owner: FixtureStaff,
    staff: Vec<FixtureStaff>,
    groups: Vec<FixtureGroup>,
    privacy: FixturePrivacy,
    conversations: Vec<FixtureConversation>,
    tokens: FixtureTokens,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureCompany {
    id: CompanyId,
    name: String,
    widget_key: WidgetKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureStaff {
    id: StaffId,
    name: String,
    #[serde(default = "agent")]
    role: Role,
    #[serde(default)]
    permissions: Vec<Permission>,
}

fn agent() -> Role {
    Role::Agent
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureGroup {
    id: GroupId,
    name: String,
    routing: RoutingType,
    members: Vec<StaffId>,
    supervisors: Vec<StaffId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixturePrivacy {
    private_conversations_enabled: bool,
    new_conversations_private: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureConversation {
    id: ConversationId,
    group: GroupId,
    channel: Channel,
    customer: String,
    assign: Option<FixtureAssign>,
    messages: Vec<FixtureMessage>,
    closed_by: Option<StaffId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureAssign {
    by: StaffId,
    to: StaffId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureMessage {
    id: MessageId,
    /// `"customer"` or a staff id.
    from: String,
    visibility: MessageVisibility,
    body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FixtureTokens {
    owner: StaffId,
    admin: StaffId,
    supervisor: StaffId,
    agents: Vec<StaffId>,
    customer: ConversationId,
}

/// One token per demo role, for `serve --demo` to print.
#[derive(Debug, Clone)]
pub struct DemoTokens {
    pub company: CompanyId,
    pub widget_key: WidgetKey,
    /// (role label, staff name, staff id, token), owner first.
    pub staff: Vec<(String, String, StaffId, String)>,
    pub customer_conversation: ConversationId,
    pub customer: String,
}

struct Steps<'a> {
    desk: &'a Desk,
    n: usize,
}

impl Steps<'_> {
    async fn run(&mut self, actor: Actor, command: Command) -> Result<(), DemoError> {
        self.n += 1;
        let step = format!("demo/{}", self.n);
        self.desk
            .execute(actor, "demo", command, Some(&step))
            .await
            .map(|_| ())
            .map_err(|source| DemoError::Step { step, source })
    }
}

/// Loads the demo company (idempotently) and mints its tokens.
pub async fn load(desk: &Arc<Desk>, tokens: &Tokens) -> Result<DemoTokens, DemoError> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON)?;
    let company = fixture.company.id;
    let owner = Actor::Staff(fixture.owner.id);
    let mut steps = Steps { desk, n: 0 };
    steps
        .run(
            Actor::System,
            Command::CreateCompany {
                company,
                name: Name::parse(&fixture.company.name)?,
                widget_key: fixture.company.widget_key,
                owner: fixture.owner.id,
                owner_name: Name::parse(&fixture.owner.name)?,
            },
        )
        .await?;
    for staff in &fixture.staff {
        let name = Name::parse(&staff.name)?;
        steps
            .run(
                owner,
                Command::AddStaff {
                    company,
                    staff: staff.id,
                    name,
                    role: staff.role,
                },
            )
            .await?;
        for permission in &staff.permissions {
            steps
                .run(
                    owner,
                    Command::GrantPermission {
                        company,
                        staff: staff.id,
                        permission: *permission,
                    },
                )
                .await?;
        }
    }
    for group in &fixture.groups {
        let name = Name::parse(&group.name)?;
        steps
            .run(
                owner,
                Command::CreateGroup {
                    company,
                    group: group.id,
                    name,
                    routing: group.routing,
                },
            )
            .await?;
        for staff in &group.members {
            steps
                .run(
                    owner,
                    Command::AddGroupMember {
                        company,
                        group: group.id,
                        staff: *staff,
                    },
                )
                .await?;
        }
        for staff in &group.supervisors {
            steps
                .run(
                    owner,
                    Command::AddGroupSupervisor {
                        company,
                        group: group.id,
                        staff: *staff,
                    },
                )
                .await?;
        }
    }
    steps
        .run(
            owner,
            Command::UpdatePrivacySettings {
                company,
                private_conversations_enabled: fixture.privacy.private_conversations_enabled,
                new_conversations_private: fixture.privacy.new_conversations_private,
            },
        )
        .await?;
    for conversation in &fixture.conversations {
        let customer = Actor::Customer(conversation.id);
        steps
            .run(
                customer,
                Command::OpenConversation {
                    company,
                    conversation: conversation.id,
                    group: conversation.group,
                    channel: conversation.channel,
                    customer: Name::parse(&conversation.customer)?,
                },
            )
            .await?;
        if let Some(assign) = &conversation.assign {
            steps
                .run(
                    Actor::Staff(assign.by),
                    Command::AssignConversation {
                        conversation: conversation.id,
                        assignee: assign.to,
                    },
                )
                .await?;
        }
        for message in &conversation.messages {
            let author = if message.from == "customer" {
                customer
            } else {
                Actor::Staff(message.from.parse().map_err(|_| DemoError::Step {
                    step: format!("message {}", message.id),
                    source: ApiError::validation("`from` must be \"customer\" or a staff id"),
                })?)
            };
            steps
                .run(
                    author,
                    Command::SendMessage {
                        conversation: conversation.id,
                        message: message.id,
                        visibility: message.visibility,
                        body: MessageBody::parse(&message.body)?,
                    },
                )
                .await?;
        }
        if let Some(by) = conversation.closed_by {
            steps
                .run(
                    Actor::Staff(by),
                    Command::CloseConversation {
                        conversation: conversation.id,
                    },
                )
                .await?;
        }
    }
    tokens_for(desk, tokens, &fixture)
}

fn tokens_for(desk: &Desk, tokens: &Tokens, fixture: &Fixture) -> Result<DemoTokens, DemoError> {
    let company = fixture.company.id;
    let mut roles = vec![
        ("owner".to_owned(), fixture.tokens.owner),
        ("admin".to_owned(), fixture.tokens.admin),
        ("supervisor".to_owned(), fixture.tokens.supervisor),
    ];
    for (i, agent) in fixture.tokens.agents.iter().enumerate() {
        roles.push((format!("agent {}", i + 1), *agent));
    }
    let mut staff = Vec::new();
    for (label, id) in roles {
        let name = desk
            .models()
            .state()
            .staff
            .get(&id)
            .map(|s| s.name.as_str().to_owned())
            .unwrap_or_default();
        let token = tokens
            .mint_staff(StaffIdentity { staff: id, company })
            .map_err(|_| DemoError::Token)?;
        staff.push((label, name, id, token.token));
    }
    let customer = tokens
        .mint_customer(CustomerIdentity {
            conversation: fixture.tokens.customer,
            company,
        })
        .map_err(|_| DemoError::Token)?;
    Ok(DemoTokens {
        company,
        widget_key: fixture.company.widget_key,
        staff,
        customer_conversation: fixture.tokens.customer,
        customer: customer.token,
    })
}
