//! The server's secret (`--key`), read as the server reads it
//! (`backchannel_api::secret`): a file of hex (`<data-dir>/secret`) decodes
//! to its bytes; a configured secret (`--secret`, `BACKCHANNEL_SECRET`) is
//! used as its bytes. Two keys are derived from it: the head MAC key
//! ([`HeadKey::from_secret`]) and the key that unwraps the store's data keys
//! ([`KeyWrap::from_secret`], SPEC section 12).

use std::path::Path;

use backchannel_eventlog::{HeadKey, KeyWrap};

use crate::failure::{Failure, Kind};

/// The shortest secret the server accepts, in bytes.
const MIN_SECRET_BYTES: usize = 32;

/// What the server's secret gives the tool.
#[derive(Debug, Clone)]
pub struct ServerKey {
    /// Authenticates the log's head.
    pub head: HeadKey,
    /// Unwraps the data keys of the store's key store.
    pub wrap: KeyWrap,
}

/// `value` names a file (read as the server reads `<data-dir>/secret`, or,
/// if it is not hex, as a configured secret), or is the secret itself: the
/// head MAC key.
pub fn parse(value: &str) -> Result<HeadKey, Failure> {
    parse_server_key(value).map(|key| key.head)
}

/// [`parse`], both keys.
pub fn parse_server_key(value: &str) -> Result<ServerKey, Failure> {
    let path = Path::new(value);
    let secret = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Failure::new(
                Kind::Unavailable,
                format!("--key {}: {err}", path.display()),
            )
        })?;
        let text = text.trim();
        decode_hex(text).unwrap_or_else(|| text.as_bytes().to_vec())
    } else {
        value.as_bytes().to_vec()
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Failure::new(
            Kind::Usage,
            format!(
                "--key: not a file, and too short for a server secret (at least \
                 {MIN_SECRET_BYTES} bytes)"
            ),
        ));
    }
    Ok(ServerKey {
        head: HeadKey::from_secret(&secret),
        wrap: KeyWrap::from_secret(&secret),
    })
}

/// The server's secret next to a store: `<data-dir>/secret` for the store
/// `<data-dir>/store`, if there is one.
pub fn beside_store(store: &Path) -> Option<(HeadKey, std::path::PathBuf)> {
    let file = store.parent()?.join("secret");
    let text = std::fs::read_to_string(&file).ok()?;
    let secret = decode_hex(text.trim())?;
    Some((HeadKey::from_secret(&secret), file))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() < 2 * MIN_SECRET_BYTES {
        return None;
    }
    hex::decode(text).ok()
}
