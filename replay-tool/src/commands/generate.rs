//! `generate`: a synthetic store through the import path (see `crate::generate`).

use indicatif::HumanCount;
use std::convert::Infallible;
use std::time::Instant;

use backchannel_eventlog::{Log, StoreSpec};

use crate::cli::GenerateArgs;
use crate::commands::{note, rate};
use crate::failure::{Failure, Kind};
use crate::generate::{GenerateOptions, Generator};
use crate::progress::Progress;
use crate::source::open_error;

pub fn run(args: &GenerateArgs, quiet: bool) -> Result<(), Failure> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut e| e.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::new(
            Kind::Unavailable,
            format!(
                "{}: not empty; generate writes a new store",
                args.out.display()
            ),
        ));
    }
    let started = Instant::now();
    let progress = Progress::new("generating", quiet);
    progress.start_pass(
        args.max_events
            .unwrap_or(args.conversations.saturating_mul(10)),
    );
    let mut generator = Generator::new(GenerateOptions {
        seed: args.seed,
        conversations: args.conversations,
        companies: args.companies,
        max_events: args.max_events,
    });
    let mut position = 0u64;
    let records = std::iter::from_fn(|| {
        let record = generator.next()?;
        position += 1;
        progress.at(position);
        Some(Ok::<_, Infallible>(record))
    });
    let log = Log::import(&StoreSpec::sled(&args.out), records).map_err(|err| match err {
        backchannel_eventlog::ImportError::Open(err) => open_error(&args.out, err),
        other => Failure::new(Kind::Io, other.to_string()),
    })?;
    let head = log.head();
    log.close()
        .map_err(|err| Failure::new(Kind::Io, err.to_string()))?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    note(
        quiet,
        format_args!(
            "generated {} events (seed {}, {} conversations opened, {} commands refused by the domain) into {} in {seconds:.2} s ({})",
            HumanCount(head),
            args.seed,
            HumanCount(generator.opened()),
            HumanCount(generator.refused),
            args.out.display(),
            rate(head, seconds)
        ),
    );
    Ok(())
}
