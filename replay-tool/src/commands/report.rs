//! `report`: the closed-enquiry report (`projections::report`, the code the
//! server's `GET /reports/enquiries` calls).

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};

use backchannel_projections::report::{
    REPORT_PASSES, ReportError, ReportFormat, ReportRequest, ReportSummary, write_report,
};
use indicatif::HumanCount;

use crate::cli::{ReportArgs, ReportFormatArg};
use crate::commands::{note, open_reading_source, parse_id, parse_time, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::{SourceError, Tracked};

pub fn run(args: &ReportArgs, quiet: bool) -> Result<(), Failure> {
    let request = ReportRequest {
        from: parse_time("from", &args.from)?,
        to: parse_time("to", &args.to)?,
        group: args
            .group
            .as_deref()
            .map(|g| parse_id("group", g))
            .transpose()?,
        company: args
            .company
            .as_deref()
            .map(|c| parse_id("company", c))
            .transpose()?,
        viewer: args
            .viewer
            .as_deref()
            .map(|s| parse_id("as", s))
            .transpose()?,
        format: match args.format {
            ReportFormatArg::Csv => ReportFormat::Csv,
            ReportFormatArg::Json => ReportFormat::Json,
        },
    };
    if request.from >= request.to {
        return Err(Failure::new(Kind::Usage, "--from must be before --to"));
    }
    let source = open_reading_source(&args.source, &args.keys, quiet)?;
    let progress = Progress::with_passes("report", &REPORT_PASSES, quiet);
    let tracked = Tracked {
        source: &source,
        progress: &progress,
    };
    let summary = match &args.out {
        None => write(&tracked, &request, BufWriter::new(io::stdout().lock())),
        Some(path) => {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(|err| Failure::new(Kind::Io, format!("{}: {err}", path.display())))?;
            write(&tracked, &request, BufWriter::new(file))
        }
    }?;
    progress.finish();
    note(
        quiet,
        format_args!(
            "{} conversations, {} messages ({} private) as of position {}",
            HumanCount(summary.conversations),
            HumanCount(summary.rows),
            HumanCount(summary.private_rows),
            HumanCount(summary.head)
        ),
    );
    if let Some(viewer) = request.viewer {
        // SPEC section 12: a view given --as opens content, but this tool never
        // writes to its source, so the read audit cannot record it here.
        note(
            quiet,
            format_args!(
                "note: this report as {viewer} is not recorded in the read audit \
                 (replay-tool never writes to the log); the server's \
                 /reports/enquiries records it"
            ),
        );
    }
    Ok(())
}

fn write<W: Write>(
    source: &Tracked<'_>,
    request: &ReportRequest,
    out: W,
) -> Result<ReportSummary, Failure> {
    write_report(source, request, out).map_err(|err| match err {
        ReportError::EmptyRange => Failure::new(Kind::Usage, err.to_string()),
        ReportError::UnknownViewer(_)
        | ReportError::UnknownGroup(_)
        | ReportError::UnknownCompany(_) => Failure::new(Kind::NotFound, err.to_string()),
        ReportError::Forbidden(_) => Failure::new(Kind::Forbidden, format!("refused: {err}")),
        ReportError::Source(source) => match source.downcast::<SourceError>() {
            Ok(err) => source_failure(*err),
            Err(other) => Failure::new(Kind::Io, other.to_string()),
        },
        ReportError::Output(err) => output(err),
        ReportError::Time(_) => Failure::new(Kind::Broken, err.to_string()),
    })
}
