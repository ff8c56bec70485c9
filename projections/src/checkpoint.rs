//! Checkpoints of the read models: saved when a server stops, so the next start
//! replays only the events after them instead of the whole log.
//!
//! [`ReadModels`] record the last position they applied; the checkpoint stores
//! them with the hash of the record at that position (`eventlog`'s checkpoint
//! file), authenticated with the server's head key. [`open_with_read_models`]
//! resumes from a checkpoint only if the log still holds that very record, and
//! otherwise (no checkpoint, another kind, damage, a MAC the key does not
//! verify, another store's) rebuilds from position 1: a checkpoint can make a
//! start faster, never different. One exception: a checkpoint taken at a
//! position past the log's end is evidence that the log had been acknowledged
//! that far, so the open fails ([`OpenError::CheckpointAhead`], naming both
//! positions) instead of rewinding the read models to a shorter log.
//! `tests/checkpoint.rs` checks that a resumed start equals a rebuild from
//! position 1.
//!
//! Decision record: `docs/decisions/checkpoints-are-a-cache.md`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use backchannel_eventlog::{
    CheckpointError, HeadKey, KeyWrap, Log, OpenError, SavedCheckpoint, StoreSpec, load_checkpoint,
};

use crate::ProjectionError;
use crate::models::ReadModels;

/// The checkpoint's file name in its directory.
pub const CHECKPOINT_NAME: &str = "read-models";

/// What the checkpoint holds, and the version of its shape. **Change the
/// version whenever a type inside [`ReadModels`] changes** (a field added,
/// removed, reordered or retyped, in this crate or in `domain::State`): a
/// checkpoint of another kind is then ignored and the models are rebuilt, where
/// an old one would otherwise be decoded as garbage. `tests/checkpoint.rs` pins
/// the demo's checkpoint, so forgetting fails a test.
pub const CHECKPOINT_KIND: &str = "backchannel-projections/read-models/4";

/// How the read models were built at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// From a checkpoint taken at `position`; `replayed` events followed it.
    Resumed { position: u64, replayed: u64 },
    /// From position 1: there was no usable checkpoint (`why` says what was
    /// wrong with the one there, if any).
    Rebuilt { replayed: u64, why: Option<String> },
}

/// Where a process keeps its read models' checkpoint: `<store>/checkpoints`
/// for a sled store (where existing stores have it), or a node's own
/// directory (`<data-dir>/checkpoint`) when several nodes share one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointDir(pub PathBuf);

impl CheckpointDir {
    /// The store's own checkpoint directory, if its engine has one (sled).
    pub fn of_store(spec: &StoreSpec) -> Option<CheckpointDir> {
        spec.default_checkpoint_dir().map(CheckpointDir)
    }
}

/// Opens the log `spec` names and builds the read models in the same pass:
/// from the checkpoint in `checkpoints` when it has a usable one (its record's
/// hash is checked against the log before resuming), else from position 1. With
/// `key` (the server's), the checkpoint's MAC is checked, and the log keeps
/// the key to authenticate the next checkpoint and its exports. Blocking:
/// linear in the events replayed.
///
/// Fails with [`OpenError::CheckpointAhead`] when the checkpoint is past the
/// log's end, and with [`OpenError::HeadMismatch`] when the log is not the
/// one the store acknowledged.
pub fn open_with_read_models(
    spec: &StoreSpec,
    checkpoints: &CheckpointDir,
    key: Option<&HeadKey>,
    keys: Option<&KeyWrap>,
) -> Result<(Log, ReadModels, Start), OpenError> {
    open_with_read_models_counting(spec, checkpoints, key, keys, &AtomicU64::new(0))
}

/// [`open_with_read_models`], storing in `applied` the position the read
/// models have applied as the pass goes (for a progress report, e.g. the
/// server's `/readyz` while it starts).
pub fn open_with_read_models_counting(
    spec: &StoreSpec,
    checkpoints: &CheckpointDir,
    key: Option<&HeadKey>,
    keys: Option<&KeyWrap>,
    applied: &AtomicU64,
) -> Result<(Log, ReadModels, Start), OpenError> {
    // The catch-up applies sealed customer data unopened (the read models
    // keep it sealed, the api opens it when asked): a start reads no data
    // key. The log gets its key store afterwards, for what follows.
    let keyed = |log: Log| -> Result<Log, OpenError> {
        if let Some(key) = key {
            // A fresh log has no key yet; nothing to replace.
            let _ = log.set_head_key(key.clone());
        }
        match keys {
            Some(wrap) => log.with_key_wrap(wrap),
            None => Ok(log),
        }
    };
    let mut why = None;
    match load_checkpoint::<ReadModels>(&checkpoints.0, CHECKPOINT_NAME, CHECKPOINT_KIND, key) {
        Ok(Some(checkpoint)) if checkpoint.value.position() == checkpoint.after.position => {
            let position = checkpoint.after.position;
            let mut models = checkpoint.value;
            applied.store(position, Ordering::Relaxed);
            match Log::open_resuming(spec, checkpoint.after, None, |recorded| {
                models.apply(&recorded).map(drop)?;
                applied.store(models.position(), Ordering::Relaxed);
                Ok::<(), ProjectionError>(())
            }) {
                Ok(log) => {
                    let replayed = models.position() - position;
                    return Ok((keyed(log)?, models, Start::Resumed { position, replayed }));
                }
                Err(err @ OpenError::DoesNotContinue { .. }) => why = Some(err.to_string()),
                Err(err) => return Err(err),
            }
        }
        Ok(Some(_)) => {
            why = Some("the checkpoint's models disagree with its position".to_owned());
        }
        Ok(None) => {}
        Err(err) => why = Some(err.to_string()),
    }
    let mut models = ReadModels::new();
    applied.store(0, Ordering::Relaxed);
    let log = Log::open_replaying(spec, 1, None, |recorded| {
        models.apply(&recorded).map(drop)?;
        applied.store(models.position(), Ordering::Relaxed);
        Ok::<(), ProjectionError>(())
    })?;
    let replayed = models.position();
    Ok((keyed(log)?, models, Start::Rebuilt { replayed, why }))
}

/// Saves `models` as the checkpoint in `checkpoints` (blocking: writes and
/// fsyncs them whole), authenticated with the log's head key if it has one.
/// Nothing to save before the first event.
pub fn save_read_models(
    log: &Log,
    checkpoints: &CheckpointDir,
    models: &ReadModels,
) -> Result<Option<SavedCheckpoint>, CheckpointError> {
    if models.position() == 0 {
        return Ok(None);
    }
    log.save_checkpoint(
        &checkpoints.0,
        CHECKPOINT_NAME,
        CHECKPOINT_KIND,
        models.position(),
        models,
    )
    .map(Some)
}
