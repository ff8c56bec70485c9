//! Event payloads and their schema versions: each event's own struct in
//! bincode (the configuration of codec version 1), the older schema versions
//! still decoded (`v1`, the plaintext era) and the sealed form (`v2`).

use backchannel_domain::events::{
    ConversationOpened, Event, EventType, MessagePosted, PrivateMessagePosted,
};
use backchannel_domain::values::{Content, SealedValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CodecError, PAYLOAD_CONFIG};

/// Appends the payload of `event` (its inner struct, bincode) to `out`.
pub fn encode_payload(event: &Event, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let event_type = event.event_type();
    match event {
        Event::CompanyCreated(e) => encode_struct(event_type, e, out),
        Event::PrivacySettingsChanged(e) => encode_struct(event_type, e, out),
        Event::StaffAdded(e) => encode_struct(event_type, e, out),
        Event::StaffRoleChanged(e) => encode_struct(event_type, e, out),
        Event::PermissionGranted(e) => encode_struct(event_type, e, out),
        Event::PermissionRevoked(e) => encode_struct(event_type, e, out),
        Event::StaffDeactivated(e) => encode_struct(event_type, e, out),
        Event::GroupCreated(e) => encode_struct(event_type, e, out),
        Event::GroupRenamed(e) => encode_struct(event_type, e, out),
        Event::GroupRoutingChanged(e) => encode_struct(event_type, e, out),
        Event::GroupMemberAdded(e)
        | Event::GroupMemberRemoved(e)
        | Event::GroupSupervisorAdded(e)
        | Event::GroupSupervisorRemoved(e) => encode_struct(event_type, e, out),
        Event::ConversationOpened(e) => match &e.customer {
            Content::Legacy(customer) => encode_struct(
                event_type,
                &v1::ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: customer.clone(),
                    private: e.private,
                },
                out,
            ),
            customer => encode_struct(
                event_type,
                &v2::ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: sealed_bytes(event_type, customer)?,
                    private: e.private,
                },
                out,
            ),
        },
        Event::ConversationAssigned(e) => encode_struct(event_type, e, out),
        Event::StaffInvitedToRoom(e) => encode_struct(event_type, e, out),
        Event::ConversationPrivacyChanged(e) => encode_struct(event_type, e, out),
        Event::MessagePosted(e) => match &e.body {
            Content::Legacy(body) => encode_struct(
                event_type,
                &v1::MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: body.clone(),
                },
                out,
            ),
            body => encode_struct(
                event_type,
                &v2::MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: sealed_bytes(event_type, body)?,
                },
                out,
            ),
        },
        Event::PrivateMessagePosted(e) => match &e.body {
            Content::Legacy(body) => encode_struct(
                event_type,
                &v1::PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: body.clone(),
                },
                out,
            ),
            body => encode_struct(
                event_type,
                &v2::PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: sealed_bytes(event_type, body)?,
                },
                out,
            ),
        },
        Event::ConversationClosed(e) => encode_struct(event_type, e, out),
        Event::ConversationReopened(e) => encode_struct(event_type, e, out),
        Event::NotificationsMarkedRead(e) => encode_struct(event_type, e, out),
        Event::RoundRobinTurnTaken(e) => encode_struct(event_type, e, out),
        Event::WidgetOriginsChanged(e) => encode_struct(event_type, e, out),
        Event::ContentOpened(e) => encode_struct(event_type, e, out),
        Event::ConversationErased(e) => encode_struct(event_type, e, out),
    }
}

/// The stored bytes of a sealed value. Plaintext never reaches the log: the
/// log seals [`Content::Plain`] before it encodes (`crate::keystore`), and
/// erased content is never written.
fn sealed_bytes<T>(event_type: EventType, content: &Content<T>) -> Result<&[u8], CodecError> {
    match content {
        Content::Sealed(sealed) => Ok(sealed.as_bytes()),
        Content::Plain(_) => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "customer data must be sealed before it is stored".to_owned(),
        }),
        Content::Erased | Content::Legacy(_) => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "erased content cannot be stored".to_owned(),
        }),
    }
}

/// The payloads of schema version 1 whose customer data was in clear (the
/// plaintext era): decoded into [`Content::Legacy`], and written only to
/// re-encode such events exactly.
mod v1 {
    use backchannel_domain::events::MessageAuthor;
    use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
    use backchannel_domain::model::Channel;
    use backchannel_domain::values::{MessageBody, Name};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ConversationOpened {
        pub company: CompanyId,
        pub conversation: ConversationId,
        pub group: GroupId,
        pub channel: Channel,
        pub customer: Name,
        pub private: bool,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct MessagePosted {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: MessageAuthor,
        pub body: MessageBody,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct PrivateMessagePosted {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: StaffId,
        pub body: MessageBody,
    }
}

/// Schema version 2: the same fields, the customer data sealed
/// (`crate::crypt`'s format, as opaque bytes).
mod v2 {
    use backchannel_domain::events::MessageAuthor;
    use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
    use backchannel_domain::model::Channel;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ConversationOpened<B> {
        pub company: CompanyId,
        pub conversation: ConversationId,
        pub group: GroupId,
        pub channel: Channel,
        pub customer: B,
        pub private: bool,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct MessagePosted<B> {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: MessageAuthor,
        pub body: B,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct PrivateMessagePosted<B> {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: StaffId,
        pub body: B,
    }
}

fn encode_struct<T: Serialize>(
    event_type: EventType,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, PAYLOAD_CONFIG)
        .map(|_| ())
        .map_err(|err| CodecError::Encode {
            event_type: event_type.name(),
            reason: err.to_string(),
        })
}

/// Decodes a payload written for `(event_type, schema_version)`.
///
/// Every schema version ever written must keep an arm here, decoding into the
/// struct of that version (and upgrading it if the domain has moved on).
pub fn decode_payload(
    event_type: EventType,
    schema_version: u16,
    bytes: &[u8],
) -> Result<Event, CodecError> {
    use EventType as T;
    let v = schema_version;
    match (event_type, v) {
        (T::CompanyCreated, 1) => decode_struct(event_type, v, bytes).map(Event::CompanyCreated),
        (T::PrivacySettingsChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PrivacySettingsChanged)
        }
        (T::StaffAdded, 1) => decode_struct(event_type, v, bytes).map(Event::StaffAdded),
        (T::StaffRoleChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffRoleChanged)
        }
        (T::PermissionGranted, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PermissionGranted)
        }
        (T::PermissionRevoked, 1) => {
            decode_struct(event_type, v, bytes).map(Event::PermissionRevoked)
        }
        (T::StaffDeactivated, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffDeactivated)
        }
        (T::GroupCreated, 1) => decode_struct(event_type, v, bytes).map(Event::GroupCreated),
        (T::GroupRenamed, 1) => decode_struct(event_type, v, bytes).map(Event::GroupRenamed),
        (T::GroupRoutingChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupRoutingChanged)
        }
        (T::GroupMemberAdded, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupMemberAdded)
        }
        (T::GroupMemberRemoved, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupMemberRemoved)
        }
        (T::GroupSupervisorAdded, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupSupervisorAdded)
        }
        (T::GroupSupervisorRemoved, 1) => {
            decode_struct(event_type, v, bytes).map(Event::GroupSupervisorRemoved)
        }
        (T::ConversationOpened, 1) => {
            decode_struct(event_type, v, bytes).map(|e: v1::ConversationOpened| {
                Event::ConversationOpened(ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: Content::Legacy(e.customer),
                    private: e.private,
                })
            })
        }
        (T::ConversationOpened, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::ConversationOpened<Vec<u8>>| {
                Event::ConversationOpened(ConversationOpened {
                    company: e.company,
                    conversation: e.conversation,
                    group: e.group,
                    channel: e.channel,
                    customer: Content::Sealed(SealedValue::new(e.customer)),
                    private: e.private,
                })
            })
        }
        (T::ConversationAssigned, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationAssigned)
        }
        (T::StaffInvitedToRoom, 1) => {
            decode_struct(event_type, v, bytes).map(Event::StaffInvitedToRoom)
        }
        (T::ConversationPrivacyChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationPrivacyChanged)
        }
        (T::MessagePosted, 1) => decode_struct(event_type, v, bytes).map(|e: v1::MessagePosted| {
            Event::MessagePosted(MessagePosted {
                conversation: e.conversation,
                message: e.message,
                author: e.author,
                body: Content::Legacy(e.body),
            })
        }),
        (T::MessagePosted, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::MessagePosted<Vec<u8>>| {
                Event::MessagePosted(MessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Sealed(SealedValue::new(e.body)),
                })
            })
        }
        (T::PrivateMessagePosted, 1) => {
            decode_struct(event_type, v, bytes).map(|e: v1::PrivateMessagePosted| {
                Event::PrivateMessagePosted(PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Legacy(e.body),
                })
            })
        }
        (T::PrivateMessagePosted, 2) => {
            decode_struct(event_type, v, bytes).map(|e: v2::PrivateMessagePosted<Vec<u8>>| {
                Event::PrivateMessagePosted(PrivateMessagePosted {
                    conversation: e.conversation,
                    message: e.message,
                    author: e.author,
                    body: Content::Sealed(SealedValue::new(e.body)),
                })
            })
        }
        (T::ConversationClosed, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationClosed)
        }
        (T::ConversationReopened, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationReopened)
        }
        (T::NotificationsMarkedRead, 1) => {
            decode_struct(event_type, v, bytes).map(Event::NotificationsMarkedRead)
        }
        (T::RoundRobinTurnTaken, 1) => {
            decode_struct(event_type, v, bytes).map(Event::RoundRobinTurnTaken)
        }
        (T::WidgetOriginsChanged, 1) => {
            decode_struct(event_type, v, bytes).map(Event::WidgetOriginsChanged)
        }
        (T::ContentOpened, 1) => decode_struct(event_type, v, bytes).map(Event::ContentOpened),
        (T::ConversationErased, 1) => {
            decode_struct(event_type, v, bytes).map(Event::ConversationErased)
        }
        (event_type, version) => Err(CodecError::UnknownSchemaVersion {
            event_type: event_type.name(),
            version,
        }),
    }
}

fn decode_struct<T: DeserializeOwned>(
    event_type: EventType,
    version: u16,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, PAYLOAD_CONFIG).map_err(|err| {
            CodecError::BadPayload {
                event_type: event_type.name(),
                version,
                reason: err.to_string(),
            }
        })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            event_type: event_type.name(),
            version,
            extra: bytes.len() - read,
        });
    }
    Ok(value)
}
