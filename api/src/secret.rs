//! The token signing secret: given by configuration, or generated once and kept
//! in `<data-dir>/secret` (mode 0600) so tokens survive restarts. The log's
//! head MAC key is derived from it ([`head_key`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Shortest secret accepted from configuration, in bytes.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the signing secret must be at least {MIN_SECRET_BYTES} bytes long")]
    TooShort,
    #[error("cannot read or write the secret file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {path} is corrupt (expected hex text)")]
    Corrupt { path: PathBuf },
}

/// The secret to sign with: `configured` if given, else the data dir's file,
/// created on first use.
pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("secret");
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => decode_hex(text.trim()).ok_or(SecretError::Corrupt { path: path.clone() }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(io)?;
            let mut secret = vec![0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            write_private(&path, &hex::encode(&secret)).map_err(io)?;
            Ok(secret)
        }
        Err(err) => Err(io(err)),
    }
}

/// The key the log's head is authenticated with (exports, checkpoints,
/// `GET /log/head`): derived from the secret, so whoever can verify tokens'
/// origin can check the head too (`replay-tool verify --key <data-dir>/secret`).
pub(crate) fn head_key(secret: &[u8]) -> backchannel_eventlog::HeadKey {
    backchannel_eventlog::HeadKey::from_secret(secret)
}

/// The keys a server opens its log with, both derived from the secret (each
/// under its own context): the head key (see [`head_key`]) and the key
/// wrap its key store keeps conversations' data keys under (SPEC section 12;
/// `eventlog::crypt`).
pub struct LogKeys {
    pub head: backchannel_eventlog::HeadKey,
    pub wrap: backchannel_eventlog::KeyWrap,
}

pub fn log_keys(secret: &[u8]) -> LogKeys {
    LogKeys {
        head: head_key(secret),
        wrap: backchannel_eventlog::KeyWrap::from_secret(secret),
    }
}

/// Writes a new file readable by its owner only, fsynced, via a temp file
/// in the same directory renamed over `path` (`tempfile` creates it with
/// mode 0600), then fsyncs the directory so the rename is durable.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok()?;
    (bytes.len() >= MIN_SECRET_BYTES).then_some(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), None).unwrap();
        let second = load_or_create(dir.path(), None).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_short_or_malformed_secret_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["abcd", &"zz".repeat(32), &"a".repeat(65)] {
            fs::write(dir.path().join("secret"), text).unwrap();
            assert!(matches!(
                load_or_create(dir.path(), None),
                Err(SecretError::Corrupt { .. })
            ));
        }
        fs::write(dir.path().join("secret"), "0A".repeat(32)).unwrap();
        assert_eq!(load_or_create(dir.path(), None).unwrap(), vec![10u8; 32]);
    }

    #[test]
    fn short_configured_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_create(dir.path(), Some("short")),
            Err(SecretError::TooShort)
        ));
    }
}
