//! The demo company (`serve --demo`), from `fixtures/demo/demo.json`.
//!
//! Every step ([`plan`]) is a domain command run through the desk, exactly
//! like a mutation, with an idempotency key derived from its place in the
//! fixture. The fixture covers every role (owner, admin, a supervisor, agents
//! in a BROADCAST and a ROUND_ROBIN group, an ENQUIRY_HISTORY holder), every
//! status and channel, private and public conversations, public and private
//! messages, and privacy changed over time (a conversation made public and
//! private again, the company switch off and on).
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
use crate::graphql::operations as op;

/// The fixture, compiled in so `serve --demo` works from any directory.
pub(crate) const DEMO_JSON: &str = include_str!("../../fixtures/demo/demo.json");

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
    /// What happens after the conversations above, in order.
    #[serde(default)]
    timeline: Vec<FixtureLater>,
    tokens: FixtureTokens,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum FixtureLater {
    Conversation(FixtureConversation),
    #[serde(rename_all = "camelCase")]
    SetConversationPrivacy {
        by: StaffId,
        conversation: ConversationId,
        private: bool,
    },
    #[serde(rename_all = "camelCase")]
    UpdatePrivacySettings {
        by: StaffId,
        private_conversations_enabled: bool,
        new_conversations_private: bool,
    },
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
    /// (group id, group name, routing), as `startConversation` needs a group.
    pub groups: Vec<(GroupId, String, RoutingType)>,
    pub customer_conversation: ConversationId,
    pub customer: String,
}

/// One step of the demo: a command and who issues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoStep {
    pub actor: Actor,
    pub command: Command,
}

/// Every step of the demo, in order: what [`load`] runs through the desk
/// (step *n* with the idempotency key `demo/<n>`, counting from 1), and what
/// the replay tool's deterministic demo log (`fixtures/demo/demo.bclog`)
/// records with fixed times.
pub fn plan() -> Result<Vec<DemoStep>, DemoError> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON)?;
    let company = fixture.company.id;
    let owner = Actor::Staff(fixture.owner.id);
    let mut steps = Vec::new();
    let mut step = |actor: Actor, command: Command| steps.push(DemoStep { actor, command });
    step(
        Actor::System,
        Command::CreateCompany {
            company,
            name: Name::parse(&fixture.company.name)?,
            widget_key: fixture.company.widget_key,
            owner: fixture.owner.id,
            owner_name: Name::parse(&fixture.owner.name)?,
        },
    );
    for staff in &fixture.staff {
        step(
            owner,
            Command::AddStaff {
                company,
                staff: staff.id,
                name: Name::parse(&staff.name)?,
                role: staff.role,
            },
        );
        for permission in &staff.permissions {
            step(
                owner,
                Command::GrantPermission {
                    company,
                    staff: staff.id,
                    permission: *permission,
                },
            );
        }
    }
    for group in &fixture.groups {
        step(
            owner,
            Command::CreateGroup {
                company,
                group: group.id,
                name: Name::parse(&group.name)?,
                routing: group.routing,
            },
        );
        for staff in &group.members {
            step(
                owner,
                Command::AddGroupMember {
                    company,
                    group: group.id,
                    staff: *staff,
                },
            );
        }
        for staff in &group.supervisors {
            step(
                owner,
                Command::AddGroupSupervisor {
                    company,
                    group: group.id,
                    staff: *staff,
                },
            );
        }
    }
    step(
        owner,
        Command::UpdatePrivacySettings {
            company,
            private_conversations_enabled: fixture.privacy.private_conversations_enabled,
            new_conversations_private: fixture.privacy.new_conversations_private,
        },
    );
    for conversation in &fixture.conversations {
        conversation_steps(company, conversation, &mut step)?;
    }
    for later in &fixture.timeline {
        match later {
            FixtureLater::Conversation(conversation) => {
                conversation_steps(company, conversation, &mut step)?;
            }
            FixtureLater::SetConversationPrivacy {
                by,
                conversation,
                private,
            } => step(
                Actor::Staff(*by),
                Command::SetConversationPrivacy {
                    conversation: *conversation,
                    private: *private,
                },
            ),
            FixtureLater::UpdatePrivacySettings {
                by,
                private_conversations_enabled,
                new_conversations_private,
            } => step(
                Actor::Staff(*by),
                Command::UpdatePrivacySettings {
                    company,
                    private_conversations_enabled: *private_conversations_enabled,
                    new_conversations_private: *new_conversations_private,
                },
            ),
        }
    }
    Ok(steps)
}

/// Opening, assignment, messages and close of one fixture conversation.
fn conversation_steps(
    company: CompanyId,
    conversation: &FixtureConversation,
    step: &mut impl FnMut(Actor, Command),
) -> Result<(), DemoError> {
    let customer = Actor::Customer(conversation.id);
    step(
        customer,
        Command::OpenConversation {
            company,
            conversation: conversation.id,
            group: conversation.group,
            channel: conversation.channel,
            customer: Name::parse(&conversation.customer)?,
            first_message: None,
        },
    );
    if let Some(assign) = &conversation.assign {
        step(
            Actor::Staff(assign.by),
            Command::AssignConversation {
                conversation: conversation.id,
                assignee: assign.to,
            },
        );
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
        step(
            author,
            Command::SendMessage {
                conversation: conversation.id,
                message: message.id,
                visibility: message.visibility,
                body: MessageBody::parse(&message.body)?,
            },
        );
    }
    if let Some(by) = conversation.closed_by {
        step(
            Actor::Staff(by),
            Command::CloseConversation {
                conversation: conversation.id,
            },
        );
    }
    Ok(())
}

/// Loads the demo company (idempotently) and mints its tokens.
pub(crate) async fn load(desk: &Arc<Desk>, tokens: &Tokens) -> Result<DemoTokens, DemoError> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON)?;
    for (n, step) in plan()?.into_iter().enumerate() {
        let key = format!("demo/{}", n + 1);
        desk.execute(step.actor, op::DEMO, step.command, Some(&key))
            .await
            .map_err(|source| DemoError::Step { step: key, source })?;
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
        groups: fixture
            .groups
            .iter()
            .map(|g| (g.id, g.name.clone(), g.routing))
            .collect(),
        customer_conversation: fixture.tokens.customer,
        customer: customer.token,
    })
}
