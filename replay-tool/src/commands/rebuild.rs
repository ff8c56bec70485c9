//! `rebuild`: every read model from position 1. The server keeps its read
//! models in memory (`projections::ReadModels`), so "fresh storage" is fresh
//! memory here; the rebuilt models are counted and dropped.

use indicatif::HumanCount;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use backchannel_projections::{EventSource, ReadModels};

use crate::cli::SourceOnly;
use crate::commands::{open_reading_source, rate, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::{Source, Tracked};

pub fn run(args: &SourceOnly, quiet: bool) -> Result<(), Failure> {
    let source = open_reading_source(&args.source, &args.keys, quiet)?;
    let started = Instant::now();
    let models = rebuild(&source, &Progress::new("rebuilding", quiet))?;
    let seconds = started.elapsed().as_secs_f64();
    let state = models.state();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rebuilt the read models from {} events in {seconds:.2} s ({}): {} companies, {} staff, \
         {} groups, {} conversations (in memory, as the server holds them)",
        HumanCount(models.position()),
        rate(models.position(), seconds),
        HumanCount(state.companies.len() as u64),
        HumanCount(state.staff.len() as u64),
        HumanCount(state.groups.len() as u64),
        HumanCount(state.conversations.len() as u64),
    )
    .map_err(output)
}

pub fn rebuild(source: &Source, progress: &Progress) -> Result<ReadModels, Failure> {
    let mut models = ReadModels::new();
    let mut failure = None;
    let tracked = Tracked { source, progress };
    tracked
        .replay(1, source.head(), &mut |event| match models.apply(event) {
            Ok(_) => ControlFlow::Continue(()),
            Err(err) => {
                failure = Some(Failure::new(Kind::Broken, err.to_string()));
                ControlFlow::Break(())
            }
        })
        .map_err(source_failure)?;
    match failure {
        Some(failure) => Err(failure),
        None => Ok(models),
    }
}
