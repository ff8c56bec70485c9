//! `verify`: the hash chain and every invariant, over a store or a file; with
//! `--key`, the head's MAC; with `--expect-head`, a head published earlier.

use indicatif::HumanCount;
use std::io::Write;
use std::time::Instant;

use backchannel_eventlog::{Hash, HeadKey, VerifyReport, codec, parse_hash};

use crate::cli::VerifyArgs;
use crate::commands::{open_source, rate, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::{Source, SourceError, file_error, open_reader};

/// A head published earlier: the record at `position` (default: the log's
/// head) must hash to `hash`.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedHead {
    pub position: Option<u64>,
    pub hash: Hash,
}

impl ExpectedHead {
    pub fn parse(value: &str) -> Result<ExpectedHead, Failure> {
        let usage = || {
            Failure::new(
                Kind::Usage,
                format!("--expect-head {value:?}: expected HASH or POSITION:HASH (64 hex digits)"),
            )
        };
        let (position, hash) = match value.split_once(':') {
            Some((position, hash)) => (Some(position.parse().map_err(|_| usage())?), hash),
            None => (None, value),
        };
        let hash = parse_hash(hash).ok_or_else(usage)?;
        Ok(ExpectedHead { position, hash })
    }
}

/// What a sound log holds, and what else was checked.
pub struct Checked {
    pub report: VerifyReport,
    /// The head's MAC verified with the key.
    pub authenticated: bool,
    /// The expected head, found where it should be.
    pub expected: Option<u64>,
}

pub fn run(args: &VerifyArgs, quiet: bool) -> Result<(), Failure> {
    let key = args.key.key.as_deref().map(crate::key::parse).transpose()?;
    let expected = args
        .expect_head
        .as_deref()
        .map(ExpectedHead::parse)
        .transpose()?;
    if key.is_some() && args.source.source.data_dir.is_some() {
        return Err(Failure::new(
            Kind::Usage,
            "--key checks the MAC of an export's head (--file) or a server's (--server); a \
             store's files carry none: export it with the key, or use --expect-head",
        ));
    }
    let source = open_source(&args.source, quiet)?;
    let started = Instant::now();
    let checked = check_with(
        &source,
        &Progress::new("verifying", quiet),
        key.as_ref(),
        expected,
    )?;
    let report = checked.report;
    let seconds = started.elapsed().as_secs_f64();
    let mut also = String::new();
    if checked.authenticated {
        also.push_str("; the head's MAC verifies with the key");
    }
    if let Some(position) = checked.expected {
        also.push_str(&format!("; holds the expected head at position {position}"));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "OK: {} events, {} streams, head hash {}{also} ({} in {seconds:.2} s, {})",
        HumanCount(report.events),
        HumanCount(report.streams as u64),
        hex::encode(report.head_hash),
        source.describe(),
        rate(report.events, seconds)
    )
    .map_err(output)
}

/// The first fault, or what a sound log holds.
pub fn check(source: &Source, progress: &Progress) -> Result<VerifyReport, Failure> {
    check_with(source, progress, None, None).map(|checked| checked.report)
}

/// [`check`], then the head's MAC with `key` and the `expected` head.
pub fn check_with(
    source: &Source,
    progress: &Progress,
    key: Option<&HeadKey>,
    expected: Option<ExpectedHead>,
) -> Result<Checked, Failure> {
    checks(source, progress, key, expected).map_err(|f: Failure| match f.kind {
        Kind::Io | Kind::BadInput => f,
        _ => Failure::new(Kind::Broken, f.message),
    })
}

fn checks(
    source: &Source,
    progress: &Progress,
    key: Option<&HeadKey>,
    expected: Option<ExpectedHead>,
) -> Result<Checked, Failure> {
    let failed =
        |failure: Failure| Failure::new(failure.kind, format!("FAILED: {}", failure.message));
    let broken = |message: String| Failure::new(Kind::Broken, format!("FAILED: {message}"));
    let expected_at = |head: u64| expected.map(|e| e.position.unwrap_or(head));
    let checked = match source {
        Source::Store { log, .. } => {
            progress.start_pass(log.head());
            let report = log
                .verify_with_progress(&mut |position| progress.at(position))
                .map_err(|err| failed(source_failure(SourceError::Store(err))))?;
            let found = match expected_at(report.events) {
                Some(0) => Some([0; 32]),
                Some(position) if position <= report.events => Some(codec::record_hash(
                    &log.raw_record(position)
                        .map_err(|err| failed(source_failure(SourceError::Store(err))))?,
                )),
                _ => None,
            };
            (report, None, found)
        }
        Source::File { path, .. } => {
            let mut reader = open_reader(path).map_err(failed)?;
            let header = reader.header();
            let at = expected_at(header.events);
            let mut found = (at == Some(0)).then_some([0; 32]);
            progress.start_pass(header.events);
            while let Some(event) = reader.next_record() {
                let event = event.map_err(|err| failed(file_error(path, err)))?;
                let position = event.envelope.position;
                if at == Some(position) {
                    found = Some(codec::record_hash(reader.record_bytes()));
                }
                progress.at(position);
            }
            let summary = reader.summary();
            let report = VerifyReport {
                events: summary.events,
                streams: summary.streams,
                head_hash: summary.head_hash,
            };
            (report, Some(header), found)
        }
    };
    let (report, header, found) = checked;
    let mut authenticated = false;
    if let Some(key) = key {
        let Some(header) = header else {
            return Err(broken("a store carries no head MAC to check".to_owned()));
        };
        if header.mac.is_none() {
            return Err(broken(format!(
                "{}: its head carries no MAC (exported without a key, or file format {}), so \
                 it cannot be authenticated",
                source.describe(),
                header.file_format_version
            )));
        }
        // The reader checked the header's head against the records; the MAC
        // says who wrote that head.
        if !header.authenticated_by(key) {
            return Err(broken(format!(
                "{}: its head (position {}, hash {}) is not authenticated by this key: the log \
                 was altered and its chain recomputed, or it was exported by a server with \
                 another secret",
                source.describe(),
                report.events,
                hex::encode(report.head_hash)
            )));
        }
        authenticated = true;
    }
    let mut expected_found = None;
    if let Some(expected) = expected {
        let position = expected.position.unwrap_or(report.events);
        match found {
            None => {
                return Err(broken(format!(
                    "the log ends at position {}, before the expected head at position {position}",
                    report.events
                )));
            }
            Some(hash) if hash != expected.hash => {
                return Err(broken(format!(
                    "the record at position {position} hashes to {}, not to the expected head \
                     {}: the log differs from the one whose head was published",
                    hex::encode(hash),
                    hex::encode(expected.hash)
                )));
            }
            Some(_) => expected_found = Some(position),
        }
    }
    Ok(Checked {
        report,
        authenticated,
        expected: expected_found,
    })
}
