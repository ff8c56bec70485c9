//! Idempotency keys: the command id a key names, and the fingerprint of a
//! keyed command's arguments (SPEC section 7).

use backchannel_domain::ids::{CommandId, CorrelationId, WidgetKey};
use backchannel_domain::{Actor, Command};

use crate::error::{ApiError, ApiResult};
use crate::graphql::operations as op;

/// Shortest idempotency key of `startConversation`: its retry hands out the
/// conversation and a token for it, so the key must be unguessable.
const MIN_START_KEY_CHARS: usize = 16;
/// Longest idempotency key, in bytes.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// A UUIDv8 from the first 16 bytes of a blake3 digest.
fn uuid_v8(digest: &blake3::Hash) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// The fingerprint of a keyed command's arguments: a UUIDv8 from blake3 of
/// the operation and the command's JSON serialisation with the ids it
/// creates left out (`Command::without_created_ids`: the server picks them
/// afresh for every attempt). Stored as the append's correlation id, so a
/// retry with the same key can tell the same request (the first answer)
/// from another one (`VALIDATION`). A correlation id that is a UUIDv8 is a
/// fingerprint; the random ones of unkeyed commands are UUIDv7.
pub(super) fn arguments_fingerprint(operation: &str, command: &Command) -> CorrelationId {
    // Serialising plain data to JSON cannot fail; if it ever did, every
    // attempt would hash the same empty text, which still matches itself.
    let arguments = serde_json::to_vec(&command.without_created_ids()).unwrap_or_default();
    let digest = blake3::Hasher::new()
        .update(b"backchannel/arguments/v1\0")
        .update(operation.as_bytes())
        .update(b"\0")
        .update(&arguments)
        .finalize();
    CorrelationId::from_bytes(uuid_v8(&digest))
}

pub(super) fn is_fingerprint(correlation: CorrelationId) -> bool {
    correlation.as_bytes()[6] >> 4 == 8
}

fn check_key(key: &str, min_chars: usize) -> ApiResult<()> {
    if key.chars().count() < min_chars || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ApiError::validation(if min_chars <= 1 {
            format!("an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes")
        } else {
            format!(
                "this idempotency key must be at least {min_chars} characters (a random UUID) and at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
            )
        }));
    }
    Ok(())
}

/// The command id of a keyed `startConversation`. Its caller has no
/// identity yet, so the key is scoped to the widget key; and since a retry
/// hands back the conversation and a token for it, the key must be
/// unguessable: at least [`MIN_START_KEY_CHARS`] characters (a random UUID
/// per conversation the customer starts).
pub(crate) fn start_command_id(widget_key: WidgetKey, key: &str) -> ApiResult<CommandId> {
    check_key(key, MIN_START_KEY_CHARS)?;
    let digest = blake3::Hasher::new()
        .update(b"backchannel/idempotency/v1\0")
        .update(b"w")
        .update(widget_key.as_bytes())
        .update(op::START_CONVERSATION.as_bytes())
        .update(b"\0")
        .update(key.as_bytes())
        .finalize();
    Ok(CommandId::from_bytes(uuid_v8(&digest)))
}

/// The command id of an idempotent command: a UUIDv8 from blake3 of
/// (actor, operation, key), so the same caller retrying the same mutation
/// with the same key names the same command.
pub(super) fn command_id(actor: Actor, operation: &str, key: &str) -> ApiResult<CommandId> {
    check_key(key, 1)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"backchannel/idempotency/v1\0");
    match actor {
        Actor::Staff(id) => hasher.update(b"s").update(id.as_bytes()),
        Actor::Customer(id) => hasher.update(b"c").update(id.as_bytes()),
        Actor::System => hasher.update(b"y"),
    };
    hasher
        .update(operation.as_bytes())
        .update(b"\0")
        .update(key.as_bytes());
    Ok(CommandId::from_bytes(uuid_v8(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_domain::ids::StaffId;

    /// Command ids are stored: a retry after a deploy must derive the same
    /// one, so the derivation is pinned to values computed once.
    #[test]
    fn command_ids_stay_the_same_across_releases() {
        let widget = WidgetKey::from_bytes([7; 16]);
        let staff = Actor::Staff(StaffId::from_bytes([9; 16]));
        let start = start_command_id(widget, "0123456789abcdef").map(|id| id.to_string());
        let send = command_id(staff, op::SEND_MESSAGE, "k").map(|id| id.to_string());
        assert_eq!(
            start.ok().as_deref(),
            Some("45ed1732-efd6-8e26-a08f-c5b87cbe931a")
        );
        assert_eq!(
            send.ok().as_deref(),
            Some("f9e5eb48-44e9-8e21-b899-d74fa955b7a5")
        );
    }

    #[test]
    fn idempotency_keys_name_one_command_per_actor_and_operation() {
        let me = Actor::Staff(StaffId::new());
        let other = Actor::Staff(StaffId::new());
        let id = |actor, op, key| command_id(actor, op, key).ok();
        assert_eq!(id(me, op::SEND_MESSAGE, "k"), id(me, op::SEND_MESSAGE, "k"));
        assert_ne!(
            id(me, op::SEND_MESSAGE, "k"),
            id(other, op::SEND_MESSAGE, "k")
        );
        assert_ne!(
            id(me, op::SEND_MESSAGE, "k"),
            id(me, op::CLOSE_CONVERSATION, "k")
        );
        assert!(id(me, op::SEND_MESSAGE, "").is_none());
    }
}
