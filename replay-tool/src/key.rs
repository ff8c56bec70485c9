//! The server's key for head MACs (`--key`), read as the server reads its
//! secret (`backchannel_api::secret`): a file of hex (`<data-dir>/secret`)
//! decodes to its bytes; a configured secret (`--secret`,
//! `BACKCHANNEL_SECRET`) is used as its bytes. The MAC key is derived from
//! it with [`HeadKey::from_secret`].

use std::path::Path;

use backchannel_eventlog::HeadKey;

use crate::failure::{Failure, Kind};

/// The shortest secret the server accepts, in bytes.
const MIN_SECRET_BYTES: usize = 32;

/// `value` names a file (read as the server reads `<data-dir>/secret`, or,
/// if it is not hex, as a configured secret), or is the secret itself.
pub fn parse(value: &str) -> Result<HeadKey, Failure> {
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
    Ok(HeadKey::from_secret(&secret))
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
