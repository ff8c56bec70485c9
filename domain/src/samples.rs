//! One sample of every event type, with fixed ids and values.
//!
//! The eventlog's format-stability test encodes these into `fixtures/events/` and
//! checks that the stored bytes still decode to exactly these values.

use crate::events::*;
use crate::ids::{CompanyId, ConversationId, GroupId, MessageId, StaffId, WidgetKey};
use crate::model::{Channel, Permission, Role, RoutingType};
use crate::values::{Content, ErasureReason, MessageBody, Name, SealedValue};

fn fixed<T>(make: fn([u8; 16]) -> T, n: u8) -> T {
    let mut bytes = [0u8; 16];
    bytes[0] = 0x01;
    bytes[6] = 0x70; // UUID version 7
    bytes[8] = 0x80; // RFC 4122 variant
    bytes[15] = n;
    make(bytes)
}

fn name(s: &str) -> Name {
    match Name::parse(s) {
        Ok(name) => name,
        Err(err) => unreachable!("sample name {s:?} is valid: {err}"),
    }
}

fn body(s: &str) -> MessageBody {
    match MessageBody::parse(s) {
        Ok(body) => body,
        Err(err) => unreachable!("sample body {s:?} is valid: {err}"),
    }
}

/// Fixed sealed bytes standing for a value sealed under a data key (format
/// byte 1, then `n` repeated: the codec stores sealed values as opaque bytes).
fn sealed(n: u8, len: usize) -> SealedValue {
    let mut bytes = vec![n; len];
    bytes[0] = 1;
    SealedValue::new(bytes)
}

/// One event of each type in `EventType::ALL`, in that order, at its current
/// schema version: customer data sealed.
pub fn one_of_each() -> Vec<Event> {
    of_each(false)
}

/// The events whose customer data schema version 1 stored in clear (the
/// plaintext era): `ConversationOpened`, `MessagePosted` and
/// `PrivateMessagePosted`, with [`Content::Legacy`] values.
pub fn plaintext_era() -> Vec<Event> {
    of_each(true)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::ConversationOpened(_)
                    | Event::MessagePosted(_)
                    | Event::PrivateMessagePosted(_)
            )
        })
        .collect()
}

fn of_each(legacy: bool) -> Vec<Event> {
    let customer = match legacy {
        true => Content::Legacy(name("Carla Customer")),
        false => Content::Sealed(sealed(0xc1, 57)),
    };
    let public_body = match legacy {
        true => Content::Legacy(body("Hello, my order has not arrived. ✉")),
        false => Content::Sealed(sealed(0xb1, 78)),
    };
    let private_body = match legacy {
        true => Content::Legacy(body("Offer a refund, it is the second time.")),
        false => Content::Sealed(sealed(0xb2, 79)),
    };
    let company = fixed(CompanyId::from_bytes, 1);
    let owner = fixed(StaffId::from_bytes, 2);
    let agent = fixed(StaffId::from_bytes, 3);
    let group = fixed(GroupId::from_bytes, 4);
    let conversation = fixed(ConversationId::from_bytes, 5);
    let widget_key = fixed(WidgetKey::from_bytes, 6);
    let message = fixed(MessageId::from_bytes, 7);
    let whisper = fixed(MessageId::from_bytes, 8);
    let group_staff = GroupStaff {
        company,
        group,
        staff: agent,
    };
    vec![
        Event::CompanyCreated(CompanyCreated {
            company,
            name: name("Acme Support"),
            widget_key,
        }),
        Event::PrivacySettingsChanged(PrivacySettingsChanged {
            company,
            private_conversations_enabled: true,
            new_conversations_private: true,
        }),
        Event::StaffAdded(StaffAdded {
            company,
            staff: agent,
            name: name("Ada Agent"),
            role: Role::Agent,
        }),
        Event::StaffRoleChanged(StaffRoleChanged {
            company,
            staff: agent,
            role: Role::Supervisor,
        }),
        Event::PermissionGranted(PermissionGranted {
            company,
            staff: agent,
            permission: Permission::EnquiryHistory,
        }),
        Event::PermissionRevoked(PermissionRevoked {
            company,
            staff: agent,
            permission: Permission::EnquiryHistory,
        }),
        Event::StaffDeactivated(StaffDeactivated {
            company,
            staff: agent,
        }),
        Event::GroupCreated(GroupCreated {
            company,
            group,
            name: name("Support"),
            routing: RoutingType::Broadcast,
        }),
        Event::GroupRenamed(GroupRenamed {
            company,
            group,
            name: name("Customer Care"),
        }),
        Event::GroupRoutingChanged(GroupRoutingChanged {
            company,
            group,
            routing: RoutingType::RoundRobin,
        }),
        Event::GroupMemberAdded(group_staff.clone()),
        Event::GroupMemberRemoved(group_staff.clone()),
        Event::GroupSupervisorAdded(group_staff.clone()),
        Event::GroupSupervisorRemoved(group_staff),
        Event::ConversationOpened(ConversationOpened {
            company,
            conversation,
            group,
            channel: Channel::Chat,
            customer,
            private: true,
        }),
        Event::ConversationAssigned(ConversationAssigned {
            conversation,
            assignee: agent,
            previous_assignee: Some(owner),
            round_robin: false,
        }),
        Event::StaffInvitedToRoom(StaffInvitedToRoom {
            conversation,
            staff: owner,
        }),
        Event::ConversationPrivacyChanged(ConversationPrivacyChanged {
            conversation,
            private: false,
        }),
        Event::MessagePosted(MessagePosted {
            conversation,
            message,
            author: MessageAuthor::Customer,
            body: public_body,
        }),
        Event::PrivateMessagePosted(PrivateMessagePosted {
            conversation,
            message: whisper,
            author: owner,
            body: private_body,
        }),
        Event::ConversationClosed(ConversationClosed { conversation }),
        Event::ConversationReopened(ConversationReopened {
            conversation,
            assignee: Some(agent),
        }),
        Event::NotificationsMarkedRead(NotificationsMarkedRead {
            company,
            staff: agent,
            up_to: 42,
        }),
        Event::RoundRobinTurnTaken(RoundRobinTurnTaken {
            company,
            group,
            conversation,
            assignee: agent,
        }),
        Event::WidgetOriginsChanged(WidgetOriginsChanged {
            company,
            origins: crate::values::WidgetOrigins::parse(&[
                "https://shop.example",
                "http://localhost:3000",
            ])
            .unwrap_or_default(),
        }),
        Event::ContentOpened(ContentOpened {
            company,
            conversation,
            staff: agent,
            rule: crate::visibility::Rule::R3,
            path: ContentPath::Timeline,
            at: 1_750_000_000_000_000,
        }),
        Event::ConversationErased(ConversationErased {
            conversation,
            erased_by: owner,
            reason: ErasureReason::parse("GDPR Article 17 request #42")
                .unwrap_or_else(|err| unreachable!("sample reason is valid: {err}")),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_sample_per_event_type_in_catalogue_order() {
        let types: Vec<EventType> = one_of_each().iter().map(Event::event_type).collect();
        assert_eq!(types, EventType::ALL.to_vec());
    }

    #[test]
    fn type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
        assert_eq!(EventType::from_name("NoSuchEvent"), None);
    }
}
