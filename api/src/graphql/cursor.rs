//! Opaque cursors: base64url of a tagged value, so clients cannot build them
//! and one kind of cursor is not accepted where another is expected.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

pub(crate) fn encode(kind: &str, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

/// The value of a cursor of `kind`, or `VALIDATION`.
pub(crate) fn decode(kind: &str, cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::validation(format!("not a valid {kind} cursor"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::to_owned)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_keep_their_kind() {
        let c = encode("conversation", "abc");
        assert_eq!(decode("conversation", &c).ok().as_deref(), Some("abc"));
        assert!(decode("notification", &c).is_err());
        assert!(decode("conversation", "%%%").is_err());
    }
}
