//! Event payloads and their schema versions: each event's own struct in
//! bincode (the configuration of codec version 1); for the events that hold
//! customer data, one layout (`stored`) with that data in clear (schema
//! version 1, the plaintext era, still decoded) or sealed (version 2).

use backchannel_domain::events::{Event, EventType};
use backchannel_domain::values::{Content, MessageBody, Name, SealedValue};
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
        Event::ConversationOpened(e) => encode_struct(
            event_type,
            &stored::ConversationOpened {
                company: e.company,
                conversation: e.conversation,
                group: e.group,
                channel: e.channel,
                customer: stored_content(event_type, &e.customer)?,
                private: e.private,
            },
            out,
        ),
        Event::ConversationAssigned(e) => encode_struct(event_type, e, out),
        Event::StaffInvitedToRoom(e) => encode_struct(event_type, e, out),
        Event::ConversationPrivacyChanged(e) => encode_struct(event_type, e, out),
        Event::MessagePosted(e) => {
            let body = stored_content(event_type, &e.body)?;
            let stored = stored::Message::new(e.conversation, e.message, e.author, body);
            encode_struct(event_type, &stored, out)
        }
        Event::PrivateMessagePosted(e) => {
            let body = stored_content(event_type, &e.body)?;
            let stored = stored::Message::new(e.conversation, e.message, e.author, body);
            encode_struct(event_type, &stored, out)
        }
        Event::ConversationClosed(e) => encode_struct(event_type, e, out),
        Event::ConversationReopened(e) => encode_struct(event_type, e, out),
        Event::NotificationsMarkedRead(e) => encode_struct(event_type, e, out),
        Event::RoundRobinTurnTaken(e) => encode_struct(event_type, e, out),
        Event::WidgetOriginsChanged(e) => encode_struct(event_type, e, out),
        Event::ContentOpened(e) => encode_struct(event_type, e, out),
        Event::ConversationErased(e) => encode_struct(event_type, e, out),
    }
}

/// Customer data as a payload stores it: in clear ([`Content::Legacy`],
/// schema version 1, the plaintext era) or sealed (`crate::crypt`'s format, as
/// opaque bytes, schema version 2). Either is written as the value alone, so
/// the two versions share one layout of fields.
enum StoredContent<'a, T> {
    Clear(&'a T),
    Sealed(&'a [u8]),
}

impl<T: Serialize> Serialize for StoredContent<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredContent::Clear(value) => value.serialize(serializer),
            StoredContent::Sealed(bytes) => bytes.serialize(serializer),
        }
    }
}

/// How `content` is stored. Plaintext never reaches the log: the log seals
/// [`Content::Plain`] before it encodes (`crate::keystore`), and erased
/// content is never written.
fn stored_content<T>(
    event_type: EventType,
    content: &Content<T>,
) -> Result<StoredContent<'_, T>, CodecError> {
    match content {
        Content::Legacy(value) => Ok(StoredContent::Clear(value)),
        Content::Sealed(sealed) => Ok(StoredContent::Sealed(sealed.as_bytes())),
        Content::Plain(_) => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "customer data must be sealed before it is stored".to_owned(),
        }),
        Content::Erased => Err(CodecError::Encode {
            event_type: event_type.name(),
            reason: "erased content cannot be stored".to_owned(),
        }),
    }
}

/// Sealed customer data as decoded (schema version 2).
fn sealed<T>(bytes: Vec<u8>) -> Content<T> {
    Content::Sealed(SealedValue::new(bytes))
}

/// The payloads of the events that hold customer data, generic in how that
/// data is stored: `Name` or `MessageBody` in clear in schema version 1 (the
/// plaintext era: decoded into [`Content::Legacy`], and written only to
/// re-encode such events exactly), sealed bytes in schema version 2. The same
/// fields in the same order either way.
mod stored {
    use backchannel_domain::events::{
        ConversationOpened as Opened, Event, MessageAuthor, MessagePosted, PrivateMessagePosted,
    };
    use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId};
    use backchannel_domain::model::Channel;
    use backchannel_domain::values::{Content, MessageBody, Name};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct ConversationOpened<C> {
        pub company: CompanyId,
        pub conversation: ConversationId,
        pub group: GroupId,
        pub channel: Channel,
        pub customer: C,
        pub private: bool,
    }

    impl<C> ConversationOpened<C> {
        pub(super) fn into_event(self, customer: fn(C) -> Content<Name>) -> Event {
            Event::ConversationOpened(Opened {
                company: self.company,
                conversation: self.conversation,
                group: self.group,
                channel: self.channel,
                customer: customer(self.customer),
                private: self.private,
            })
        }
    }

    /// `MessagePosted` (`A` = `MessageAuthor`) and `PrivateMessagePosted`
    /// (`A` = `StaffId`).
    #[derive(Serialize, Deserialize)]
    pub(super) struct Message<A, B> {
        pub conversation: ConversationId,
        pub message: MessageId,
        pub author: A,
        pub body: B,
    }

    impl<A, B> Message<A, B> {
        pub(super) fn new(
            conversation: ConversationId,
            message: MessageId,
            author: A,
            body: B,
        ) -> Self {
            Message {
                conversation,
                message,
                author,
                body,
            }
        }
    }

    impl<B> Message<MessageAuthor, B> {
        pub(super) fn into_posted(self, body: fn(B) -> Content<MessageBody>) -> Event {
            Event::MessagePosted(MessagePosted {
                conversation: self.conversation,
                message: self.message,
                author: self.author,
                body: body(self.body),
            })
        }
    }

    impl<B> Message<StaffId, B> {
        pub(super) fn into_private(self, body: fn(B) -> Content<MessageBody>) -> Event {
            Event::PrivateMessagePosted(PrivateMessagePosted {
                conversation: self.conversation,
                message: self.message,
                author: self.author,
                body: body(self.body),
            })
        }
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
    let payload = Payload {
        event_type,
        version: schema_version,
        bytes,
    };
    match (event_type, schema_version) {
        (T::CompanyCreated, 1) => payload.decode_into(Event::CompanyCreated),
        (T::PrivacySettingsChanged, 1) => payload.decode_into(Event::PrivacySettingsChanged),
        (T::StaffAdded, 1) => payload.decode_into(Event::StaffAdded),
        (T::StaffRoleChanged, 1) => payload.decode_into(Event::StaffRoleChanged),
        (T::PermissionGranted, 1) => payload.decode_into(Event::PermissionGranted),
        (T::PermissionRevoked, 1) => payload.decode_into(Event::PermissionRevoked),
        (T::StaffDeactivated, 1) => payload.decode_into(Event::StaffDeactivated),
        (T::GroupCreated, 1) => payload.decode_into(Event::GroupCreated),
        (T::GroupRenamed, 1) => payload.decode_into(Event::GroupRenamed),
        (T::GroupRoutingChanged, 1) => payload.decode_into(Event::GroupRoutingChanged),
        (T::GroupMemberAdded, 1) => payload.decode_into(Event::GroupMemberAdded),
        (T::GroupMemberRemoved, 1) => payload.decode_into(Event::GroupMemberRemoved),
        (T::GroupSupervisorAdded, 1) => payload.decode_into(Event::GroupSupervisorAdded),
        (T::GroupSupervisorRemoved, 1) => payload.decode_into(Event::GroupSupervisorRemoved),
        (T::ConversationOpened, 1) => {
            payload.decode_into(|e: stored::ConversationOpened<Name>| e.into_event(Content::Legacy))
        }
        (T::ConversationOpened, 2) => {
            payload.decode_into(|e: stored::ConversationOpened<Vec<u8>>| e.into_event(sealed))
        }
        (T::ConversationAssigned, 1) => payload.decode_into(Event::ConversationAssigned),
        (T::StaffInvitedToRoom, 1) => payload.decode_into(Event::StaffInvitedToRoom),
        (T::ConversationPrivacyChanged, 1) => {
            payload.decode_into(Event::ConversationPrivacyChanged)
        }
        (T::MessagePosted, 1) => {
            payload.decode_into(|e: stored::Message<_, MessageBody>| e.into_posted(Content::Legacy))
        }
        (T::MessagePosted, 2) => {
            payload.decode_into(|e: stored::Message<_, Vec<u8>>| e.into_posted(sealed))
        }
        (T::PrivateMessagePosted, 1) => payload
            .decode_into(|e: stored::Message<_, MessageBody>| e.into_private(Content::Legacy)),
        (T::PrivateMessagePosted, 2) => {
            payload.decode_into(|e: stored::Message<_, Vec<u8>>| e.into_private(sealed))
        }
        (T::ConversationClosed, 1) => payload.decode_into(Event::ConversationClosed),
        (T::ConversationReopened, 1) => payload.decode_into(Event::ConversationReopened),
        (T::NotificationsMarkedRead, 1) => payload.decode_into(Event::NotificationsMarkedRead),
        (T::RoundRobinTurnTaken, 1) => payload.decode_into(Event::RoundRobinTurnTaken),
        (T::WidgetOriginsChanged, 1) => payload.decode_into(Event::WidgetOriginsChanged),
        (T::ContentOpened, 1) => payload.decode_into(Event::ContentOpened),
        (T::ConversationErased, 1) => payload.decode_into(Event::ConversationErased),
        (event_type, version) => Err(CodecError::UnknownSchemaVersion {
            event_type: event_type.name(),
            version,
        }),
    }
}

/// A payload to decode, with what its errors name.
struct Payload<'a> {
    event_type: EventType,
    version: u16,
    bytes: &'a [u8],
}

impl Payload<'_> {
    /// The payload decoded as a `T`, made into its event.
    fn decode_into<T: DeserializeOwned>(
        &self,
        event: impl FnOnce(T) -> Event,
    ) -> Result<Event, CodecError> {
        decode_struct(self.event_type, self.version, self.bytes).map(event)
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
