//! [`StoreSpec`]: where a log lives, parsed from one string, and how it is
//! shown without its secrets.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::checkpoint::CHECKPOINT_DIR;
use crate::error::OpenError;

/// Where a log lives, parsed from one string (`--store`,
/// `BACKCHANNEL_STORE`): a `postgres://` or `postgresql://` URL is a
/// PostgreSQL log, anything else a filesystem path to a sled store.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A sled store in this directory.
    Sled(PathBuf),
    /// A PostgreSQL database (the connection URL, secrets included: never
    /// shown, see `Display`).
    Postgres(String),
}

impl StoreSpec {
    /// Parses `text` (see the type's docs). An empty string is refused.
    pub fn parse(text: &str) -> Result<StoreSpec, OpenError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(OpenError::BadStoreSpec {
                spec: text.to_owned(),
                problem: "it is empty".to_owned(),
            });
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            // The URL parser wants the scheme in lower case.
            let (scheme, rest) = trimmed.split_once("://").unwrap_or(("postgres", trimmed));
            Ok(StoreSpec::Postgres(format!(
                "{}://{rest}",
                scheme.to_ascii_lowercase()
            )))
        } else {
            Ok(StoreSpec::Sled(PathBuf::from(text)))
        }
    }

    /// A sled store in `path`.
    pub fn sled(path: impl Into<PathBuf>) -> StoreSpec {
        StoreSpec::Sled(path.into())
    }

    /// Where the read models' checkpoints live by default: `<store>/checkpoints`
    /// for sled (the location existing stores use); `None` for a shared
    /// database, where each node keeps its own in its data directory.
    pub fn default_checkpoint_dir(&self) -> Option<PathBuf> {
        match self {
            StoreSpec::Sled(path) => Some(path.join(CHECKPOINT_DIR)),
            StoreSpec::Postgres(_) => None,
        }
    }

    /// The sled store's directory, if this is one.
    pub fn sled_path(&self) -> Option<&Path> {
        match self {
            StoreSpec::Sled(path) => Some(path),
            StoreSpec::Postgres(_) => None,
        }
    }
}

impl FromStr for StoreSpec {
    type Err = OpenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StoreSpec::parse(text)
    }
}

/// Shows a path as is and a URL as the connection target only (user, hosts,
/// ports, database): a password may sit in the user info or the query string
/// (`?password=`), so no secret reaches logs, errors or the replay tool's
/// output; a URL that does not parse is not shown at all.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Sled(path) => write!(f, "{}", path.display()),
            StoreSpec::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => f.write_str(&crate::postgres::describe(&config)),
                Err(_) => f.write_str("postgres://(a URL that does not parse; not shown)"),
            },
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({self})")
    }
}
