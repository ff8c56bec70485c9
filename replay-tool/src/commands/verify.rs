//! `verify`: the hash chain and every invariant, over a store or a file.

use std::io::Write;
use std::time::Instant;

use backchannel_eventlog::VerifyReport;

use crate::cli::SourceOnly;
use crate::commands::export::hex;
use crate::commands::{group_digits, open_source, rate, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::{Source, SourceError, file_error, open_reader};

pub fn run(args: &SourceOnly, quiet: bool) -> Result<(), Failure> {
    let source = open_source(&args.source, quiet)?;
    let started = Instant::now();
    let report = check(&source, &Progress::new("verifying", quiet))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "OK: {} events, {} streams, head hash {} ({} in {seconds:.2} s, {})",
        group_digits(report.events),
        report.streams,
        hex(&report.head_hash),
        source.describe(),
        rate(report.events, seconds)
    )
    .map_err(output)
}

/// The first fault, or what a sound log holds.
pub fn check(source: &Source, progress: &Progress) -> Result<VerifyReport, Failure> {
    let failed =
        |failure: Failure| Failure::new(failure.kind, format!("FAILED: {}", failure.message));
    match source {
        Source::Store { log, .. } => {
            progress.start_pass(log.head());
            log.verify()
                .map_err(|err| failed(source_failure(SourceError::Store(err))))
        }
        Source::File { path, .. } => {
            let mut reader = open_reader(path).map_err(failed)?;
            progress.start_pass(reader.header().events);
            while let Some(event) = reader.next_record() {
                let event = event.map_err(|err| failed(file_error(path, err)))?;
                progress.at(event.envelope.position);
            }
            let summary = reader.summary();
            Ok(VerifyReport {
                events: summary.events,
                streams: summary.streams,
                head_hash: summary.head_hash,
            })
        }
    }
    .map_err(|f: Failure| match f.kind {
        Kind::Io | Kind::BadInput => f,
        _ => Failure::new(Kind::Broken, f.message),
    })
}
