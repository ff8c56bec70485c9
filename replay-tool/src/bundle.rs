//! The auditor's key bundle (SPEC section 12, `docs/erasure.md`): the data
//! keys of an export's conversations, in clear, in a file of their own.
//! `export --keys-out FILE` writes it; `--keys FILE` on the reading commands
//! loads it, so that an export's sealed customer data opens.
//!
//! The format (JSON, one object):
//!
//! ```text
//! {
//!   "format": "backchannel-keys",
//!   "version": 1,
//!   "warning": "…",
//!   "head": {"position": 1234, "hash": "<64 hex digits>"},
//!   "keys": {"<conversation uuid>": "<64 hex digits: the data key>", …},
//!   "erased": ["<conversation uuid>", …]
//! }
//! ```
//!
//! `head` is the head of the export the bundle was written with (a reader
//! may use the bundle with any export of the same log); `keys` holds the
//! conversations whose key still exists, `erased` those whose key was
//! destroyed. A conversation in neither has no key in the bundle: its sealed
//! data stays sealed. Readers refuse another `format` or a `version` they do
//! not know.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::{DataKey, Hash};
use serde::{Deserialize, Serialize};

use crate::failure::{self, Failure, Kind};

/// The `format` of a key bundle.
pub const FORMAT: &str = "backchannel-keys";
/// The only `version` this tool writes and reads.
pub const VERSION: u32 = 1;
/// What every bundle says about itself.
pub const WARNING: &str = "These are data keys in clear. Whoever holds this file and an export \
    of the log reads the customer data of the conversations listed under \"keys\". Keep it apart \
    from the export, hand it over separately, and destroy it when the audit is over.";

#[derive(Serialize, Deserialize)]
struct BundleFile {
    format: String,
    version: u32,
    #[serde(default)]
    warning: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<BundleHead>,
    keys: BTreeMap<String, String>,
    #[serde(default)]
    erased: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct BundleHead {
    position: u64,
    hash: String,
}

/// The keys of a bundle, as `KeyStore::bundle` takes them (`None`: erased).
pub type Keys = HashMap<ConversationId, Option<DataKey>>;

/// Writes a bundle to `path` (which must not exist), readable by its owner
/// only: a temporary file in the same directory (mode 0600), fsynced,
/// renamed without overwriting, the directory fsynced.
pub fn write(
    path: &Path,
    head: (u64, Hash),
    live: &[(ConversationId, DataKey)],
    erased: &[ConversationId],
) -> Result<(), Failure> {
    let mut erased: Vec<String> = erased.iter().map(|c| c.as_uuid().to_string()).collect();
    erased.sort();
    let bundle = BundleFile {
        format: FORMAT.to_owned(),
        version: VERSION,
        warning: WARNING.to_owned(),
        head: Some(BundleHead {
            position: head.0,
            hash: hex::encode(head.1),
        }),
        keys: live
            .iter()
            .map(|(c, key)| (c.as_uuid().to_string(), hex::encode(key.expose_bytes())))
            .collect(),
        erased,
    };
    let mut text = serde_json::to_string_pretty(&bundle)
        .map_err(|err| Failure::new(Kind::Io, format!("{}: {err}", path.display())))?;
    text.push('\n');
    write_private(path, text.as_bytes()).map_err(|err| {
        let kind = if err.kind() == std::io::ErrorKind::AlreadyExists {
            Kind::Unavailable
        } else {
            Kind::Io
        };
        Failure::new(
            kind,
            format!(
                "--keys-out {}: {err} (a key bundle is never overwritten)",
                path.display()
            ),
        )
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist_noclobber(path).map_err(|err| err.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads the bundle at `path` (`--keys`).
pub fn load(path: &Path) -> Result<Keys, Failure> {
    let bad = |problem: String| {
        Failure::new(
            Kind::BadInput,
            format!("--keys {}: {problem}", path.display()),
        )
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| failure::input(format_args!("--keys {}", path.display()), err))?;
    let bundle: BundleFile = serde_json::from_str(&text)
        .map_err(|err| bad(format!("not a key bundle ({FORMAT} JSON): {err}")))?;
    if bundle.format != FORMAT {
        return Err(bad(format!(
            "its format is {:?}, not {FORMAT:?}",
            bundle.format
        )));
    }
    if bundle.version != VERSION {
        return Err(bad(format!(
            "bundle version {} is not supported (this tool reads version {VERSION})",
            bundle.version
        )));
    }
    let conversation = |text: &str| {
        text.parse::<ConversationId>()
            .map_err(|err| bad(format!("{text:?} is not a conversation id: {err}")))
    };
    let mut keys = Keys::with_capacity(bundle.keys.len() + bundle.erased.len());
    for (id, key) in &bundle.keys {
        let bytes: [u8; 32] = hex::decode(key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| bad(format!("the key of {id} is not 64 hex digits")))?;
        keys.insert(conversation(id)?, Some(DataKey::from_bytes(bytes)));
    }
    // An erased conversation stays erased, whatever key is listed beside it.
    for id in &bundle.erased {
        keys.insert(conversation(id)?, None);
    }
    Ok(keys)
}
