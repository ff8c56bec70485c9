//! `export`: the log as a portable file (see `eventlog::portable`), its head
//! authenticated with the server's key when the tool has it (`--key`, the
//! secret beside a `--data-dir` store, or the MAC a `--server` gave); with
//! `--keys-out`, the auditor's key bundle beside it (see [`crate::bundle`]).

use indicatif::{HumanBytes, HumanCount};
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::time::Instant;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::ConversationId;
use backchannel_eventlog::portable::{FileSummary, PortableError, PortableWriter};
use backchannel_eventlog::{DataKey, HeadKey, KeyState};

use crate::cli::ExportArgs;
use crate::commands::{note, open_source, rate};
use crate::failure::{Failure, Kind};
use crate::progress::Progress;
use crate::source::{Source, file_error, open_reader};

pub fn run(args: &ExportArgs, quiet: bool) -> Result<(), Failure> {
    let server_key = args
        .key
        .key
        .as_deref()
        .map(crate::key::parse_server_key)
        .transpose()?;
    if let Some(keys_out) = &args.keys_out {
        if server_key.is_none() {
            return Err(Failure::new(
                Kind::Usage,
                "--keys-out needs --key: the server's secret unwraps the store's data keys",
            ));
        }
        if keys_out.exists() {
            return Err(Failure::new(
                Kind::Unavailable,
                format!(
                    "--keys-out {}: the file exists (a key bundle is never overwritten)",
                    keys_out.display()
                ),
            ));
        }
    }
    let source = open_source(&args.source, quiet)?;
    // The keys are read before anything is written: a wrong --key fails here.
    let store_keys = match (&args.keys_out, &server_key) {
        (Some(_), Some(key)) => Some(source.store_key_list(&key.wrap)?),
        _ => None,
    };
    let authenticity = authenticate(&source, server_key.map(|key| key.head))?;
    let started = Instant::now();
    let progress = Progress::new("exporting", quiet);
    progress.start_pass(backchannel_projections::EventSource::head(&source));
    let to_stdout = args.out.as_os_str() == "-";
    let summary = if to_stdout {
        let stdout = io::stdout().lock();
        write(&source, BufWriter::new(stdout), &progress)
    } else {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args.out)
            .map_err(|err| {
                let kind = if err.kind() == io::ErrorKind::AlreadyExists {
                    Kind::Unavailable
                } else {
                    Kind::Io
                };
                Failure::new(
                    kind,
                    format!("{}: {err} (export never overwrites)", args.out.display()),
                )
            })?;
        let result = write(&source, BufWriter::new(&file), &progress).and_then(|summary| {
            file.sync_all()
                .map_err(|err| Failure::new(Kind::Io, err.to_string()))?;
            Ok(summary)
        });
        if result.is_err() {
            let _ = fs::remove_file(&args.out);
        }
        result
    }?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    note(
        quiet,
        format_args!(
            "exported {} events ({} streams, {}) from {} in {seconds:.2} s ({}); head hash {}; {authenticity}",
            HumanCount(summary.events),
            HumanCount(summary.streams as u64),
            HumanBytes(summary.bytes),
            source.describe(),
            rate(summary.events, seconds),
            hex::encode(summary.head_hash)
        ),
    );
    if let (Some(path), Some(store_keys)) = (&args.keys_out, store_keys) {
        let (live, erased) = exported_keys(&source, &summary, store_keys);
        crate::bundle::write(path, (summary.events, summary.head_hash), &live, &erased)?;
        note(
            quiet,
            format_args!(
                "key bundle {}: {} keys, {} erased conversations; whoever holds it and the \
                 export can read those {} conversations' customer data: keep it apart from \
                 the export",
                path.display(),
                HumanCount(live.len() as u64),
                HumanCount(erased.len() as u64),
                HumanCount(live.len() as u64),
            ),
        );
    }
    Ok(())
}

/// The keys of the conversations the export holds (a store's key store may
/// hold keys of conversations appended after it): the live ones, and those
/// destroyed (erased conversations).
fn exported_keys(
    source: &Source,
    summary: &FileSummary,
    store_keys: Vec<(ConversationId, KeyState)>,
) -> (Vec<(ConversationId, DataKey)>, Vec<ConversationId>) {
    let exported = |conversation: ConversationId| match source {
        Source::Store { log, .. } => !log
            .stream_positions(&StreamId::Conversation(conversation), summary.events)
            .is_empty(),
        // `store_key_list` refused a file before the export was written.
        Source::File { .. } => false,
    };
    let mut live = Vec::new();
    let mut erased = Vec::new();
    for (conversation, state) in store_keys {
        if !exported(conversation) {
            continue;
        }
        match state {
            KeyState::Live(key) => live.push((conversation, key)),
            KeyState::Destroyed => erased.push(conversation),
            KeyState::Absent => {}
        }
    }
    (live, erased)
}

/// Gives a store's log the key its head is authenticated with (`--key`, or
/// the server's secret beside the store), or checks a file's MAC with
/// `--key`; says what the export's head carries.
fn authenticate(source: &Source, key: Option<HeadKey>) -> Result<String, Failure> {
    match source {
        Source::Store { log, path, .. } => {
            let (key, from) = match key {
                Some(key) => (key, "--key".to_owned()),
                None => match crate::key::beside_store(path) {
                    Some((key, file)) => (key, file.display().to_string()),
                    None => {
                        return Ok("the head carries no MAC (no --key, and no server secret \
                                   beside the store)"
                            .to_owned());
                    }
                },
            };
            let _ = log.set_head_key(key);
            Ok(format!(
                "the head's MAC is computed with the key from {from}"
            ))
        }
        Source::File { path, .. } => {
            let header = open_reader(path)?.header();
            match (key, header.mac) {
                (_, None) => Ok("the head carries no MAC (the source has none)".to_owned()),
                (Some(key), Some(_)) if !header.authenticated_by(&key) => Err(Failure::new(
                    Kind::Broken,
                    format!(
                        "{}: its head's MAC does not verify with --key (forged, or another \
                         server's); refusing to export it",
                        source.describe()
                    ),
                )),
                (Some(_), Some(_)) => {
                    Ok("the head's MAC (carried over) verifies with --key".to_owned())
                }
                (None, Some(_)) => Ok("the head's MAC is carried over, unchecked".to_owned()),
            }
        }
    }
}

fn write<W: Write>(source: &Source, out: W, progress: &Progress) -> Result<FileSummary, Failure> {
    match source {
        Source::Store { log, path, .. } => log
            .export(out, |position| progress.at(position))
            .map_err(|err| file_error(path, err)),
        Source::File { path, .. } => {
            let mut reader = open_reader(path)?;
            let header = reader.header();
            let mut writer =
                PortableWriter::with_mac(out, header.events, header.head_hash, header.mac)
                    .map_err(|err| file_error(path, err))?;
            while let Some(event) = reader.next_record() {
                let event = event.map_err(|err| file_error(path, err))?;
                writer
                    .push(reader.record_bytes())
                    .map_err(|err| file_error(path, err))?;
                progress.at(event.envelope.position);
            }
            writer
                .finish()
                .map(|(_, summary)| summary)
                .map_err(|err: PortableError| file_error(path, err))
        }
    }
}
