//! `audit`: who did what, when, through which command (`projections::audit`);
//! with `--access-log`, the read audit: who opened which conversation's
//! content (SPEC section 12).

use std::io::{self, BufWriter};

use backchannel_projections::audit::{
    AuditError, AuditFormat, AuditSubject, AuditTrail, write_audit,
};

use crate::cli::{AuditArgs, LineFormat};
use crate::commands::{note, open_reading_source, parse_id, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::{SourceError, Tracked};

pub fn run(args: &AuditArgs, quiet: bool) -> Result<(), Failure> {
    let subject = if let Some(id) = &args.conversation {
        AuditSubject::Conversation(parse_id("conversation", id)?)
    } else if let Some(id) = &args.staff {
        AuditSubject::Staff(parse_id("staff", id)?)
    } else if let Some(id) = &args.company {
        AuditSubject::Company(parse_id("company", id)?)
    } else {
        return Err(Failure::new(
            Kind::Usage,
            "name --conversation, --staff or --company",
        ));
    };
    let format = match args.format {
        LineFormat::Text => AuditFormat::Text,
        LineFormat::Jsonl => AuditFormat::JsonLines,
    };
    let source = open_reading_source(&args.source, &args.keys, quiet)?;
    let progress = Progress::new("auditing", quiet);
    let tracked = Tracked {
        source: &source,
        progress: &progress,
    };
    let out = BufWriter::new(io::stdout().lock());
    let trail = if args.access_log {
        AuditTrail::ContentOpened
    } else {
        AuditTrail::Events
    };
    let entries = write_audit(&tracked, subject, trail, format, out).map_err(|err| match err {
        AuditError::UnknownSubject { .. } => Failure::new(Kind::NotFound, err.to_string()),
        AuditError::Source(source) => match source.downcast::<SourceError>() {
            Ok(err) => source_failure(*err),
            Err(other) => Failure::new(Kind::Io, other.to_string()),
        },
        AuditError::Output(err) => output(err),
        AuditError::Time(_) => Failure::new(Kind::Broken, err.to_string()),
    })?;
    progress.finish();
    note(quiet, format_args!("{entries} entries"));
    Ok(())
}
