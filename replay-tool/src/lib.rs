//! # replay-tool
//!
//! The auditors' and export jobs' command line (SPEC section 9): export and
//! import, verify, rebuild, audit, access and report, all by replaying the
//! event log; plus `generate` (a synthetic log) and `bench`. The only crate
//! that knows the terminal (progress bars, exit codes).
//!
//! It reads a stopped server's store through a copy, an exported file, or a
//! running server's `GET /log`, and never writes to its source. The report, audit and access logic lives in
//! `projections` (`report`, `audit`, `access`) so the server can serve the
//! same bytes; this crate parses flags, opens sources, draws progress and maps
//! errors to exit codes.
//!
//! Layout: [`cli`] (clap), [`commands`] (one file per command), [`source`]
//! (store copy, file, or a server's log fetched by [`remote`] into a file),
//! [`progress`] (bars on a terminal's stderr only), [`failure`] (exit codes),
//! [`key`] (`--key`: the server's secret, for head MACs and the store's
//! keys), [`bundle`] (the auditor's key bundle: `export --keys-out`,
//! `--keys`),
//! [`recorder`] (commands → records with chosen ids and times, for scenarios
//! and the generator), [`generate`] (the synthetic log).

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod failure;
pub mod generate;
pub mod key;
pub mod progress;
pub mod recorder;
pub mod remote;
pub mod source;

use cli::{Cli, Command};
use failure::Failure;

/// Runs one parsed command line.
pub fn run(cli: &Cli) -> Result<(), Failure> {
    let quiet = cli.quiet;
    match &cli.command {
        Command::Export(args) => commands::export::run(args, quiet),
        Command::Import(args) => commands::import::run(args, quiet),
        Command::Verify(args) => commands::verify::run(args, quiet),
        Command::Rebuild(args) => commands::rebuild::run(args, quiet),
        Command::Audit(args) => commands::audit::run(args, quiet),
        Command::Access(args) => commands::access::run(args, quiet),
        Command::Report(args) => commands::report::run(args, quiet),
        Command::Generate(args) => commands::generate::run(args, quiet),
        Command::Bench(args) => commands::bench::run(args, quiet),
    }
}
