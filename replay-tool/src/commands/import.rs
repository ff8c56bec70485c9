//! `import`: a store from an exported file. The file is read twice: first
//! checked in full (chain, versions, trailer), and only if it is sound are its
//! records written — so a bad file writes nothing.

use indicatif::HumanCount;
use std::fs;
use std::path::Path;
use std::time::Instant;

use backchannel_eventlog::portable::FileHeader;
use backchannel_eventlog::{HeadKey, ImportError, Log, StoreSpec};

use crate::cli::ImportArgs;
use crate::commands::{note, rate};
use crate::failure::{Failure, Kind};
use crate::progress::Progress;
use crate::source::{file_error, open_error, open_reader};

pub fn run(args: &ImportArgs, quiet: bool) -> Result<(), Failure> {
    let key = args.key.key.as_deref().map(crate::key::parse).transpose()?;
    let started = Instant::now();
    let progress = Progress::new("checking", quiet);
    let mut reader = open_reader(&args.file)?;
    progress.start_pass(reader.header().events);
    while let Some(event) = reader.next_record() {
        let event = event.map_err(|err| {
            let failure = file_error(&args.file, err);
            Failure::new(
                failure.kind,
                format!("refusing the import, nothing written: {failure}"),
            )
        })?;
        progress.at(event.envelope.position);
    }
    let checked = reader.summary();
    authenticate(&args.file, &reader.header(), key.as_ref())?;

    let spec = StoreSpec::parse(&args.into.to_string_lossy())
        .map_err(|err| Failure::new(Kind::Usage, err.to_string()))?;
    let on_disk = spec.sled_path().is_some();
    let existed = !on_disk || args.into.exists();
    if on_disk && existed {
        let empty = fs::read_dir(&args.into)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(Failure::new(
                Kind::Unavailable,
                format!(
                    "{}: not empty; import only into a new or empty directory",
                    args.into.display()
                ),
            ));
        }
    }
    let progress = Progress::new("importing", quiet);
    let mut reader = open_reader(&args.file)?;
    progress.start_pass(reader.header().events);
    let records = std::iter::from_fn(|| {
        let event = reader.next_record()?;
        Some(event.map(|event| {
            progress.at(event.envelope.position);
            reader.record_bytes().to_vec()
        }))
    });
    let imported = Log::import(&spec, records);
    let log = match imported {
        Ok(log) => log,
        Err(err) => {
            if !existed {
                let _ = fs::remove_dir_all(&args.into);
            }
            return Err(match err {
                ImportError::Open(err) => open_error(Path::new(&spec.to_string()), err),
                ImportError::NotEmpty { .. } => Failure::new(Kind::Unavailable, err.to_string()),
                ImportError::Invalid(_) | ImportError::Source(_) => {
                    Failure::new(Kind::Broken, err.to_string())
                }
                ImportError::Storage(_) => Failure::new(Kind::Io, err.to_string()),
            });
        }
    };
    let head = log.head();
    log.close()
        .map_err(|err| Failure::new(Kind::Io, format!("closing the new store failed: {err}")))?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    note(
        quiet,
        format_args!(
            "imported {} events ({} streams) into {} in {seconds:.2} s ({}); head hash {}",
            HumanCount(head),
            HumanCount(checked.streams as u64),
            spec,
            rate(head, seconds),
            hex::encode(checked.head_hash)
        ),
    );
    Ok(())
}

/// With `key`, the head's MAC must verify (checked before anything is
/// written); without it, a warning: the server holding the real secret would
/// vouch for whatever this file holds.
fn authenticate(file: &Path, header: &FileHeader, key: Option<&HeadKey>) -> Result<(), Failure> {
    let refused = |why: String| {
        Failure::new(
            Kind::Broken,
            format!(
                "refusing the import, nothing written: {}: {why}",
                file.display()
            ),
        )
    };
    match key {
        Some(_) if header.mac.is_none() => Err(refused(
            "its head carries no MAC (exported without a key, or an old file format), so it \
             cannot be authenticated"
                .to_owned(),
        )),
        Some(key) if !header.authenticated_by(key) => Err(refused(
            "its head is not authenticated by this key: the log was altered and its chain \
             recomputed, or it was exported by a server with another secret"
                .to_owned(),
        )),
        Some(_) => Ok(()),
        None => {
            let carries = if header.mac.is_some() {
                "it carries a MAC; pass --key to check it"
            } else {
                "it carries no MAC, so it cannot be authenticated"
            };
            eprintln!(
                "warning: {}: the export's authenticity was not checked ({carries})",
                file.display()
            );
            Ok(())
        }
    }
}
