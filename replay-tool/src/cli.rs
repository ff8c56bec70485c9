//! The command line (clap). Every command has `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the log is broken: verify found a fault, or a command met a corrupt,
     tampered or truncated log (the message names the first bad position)
  2  bad command line: unknown flags, malformed ids or times
  3  source or destination unusable: store in use by a running server,
     missing path, not a store, non-empty import target, server unreachable
  4  refused: the --as staff member may not read these closed enquiries, or
     the --server refused the --token (401/403)
  5  unknown id: conversation, staff, company or group not in the log
  6  not a Backchannel log export: empty, foreign or unsupported version
  7  reading or writing failed (disk, pipe)";

/// Audit, verify, export and report on a Backchannel event log by replaying it.
///
/// Reads a stopped server's store (--data-dir, through a copy: never written
/// to), an exported log file (--file), or a running server's log (--server
/// URL --token T, fetched over http or https into a temporary file). Data goes to stdout (or --out);
/// progress bars and summaries to stderr, bars only on a terminal.
///
/// Customer data (names, message bodies) is stored sealed: it shows as
/// [sealed] unless the command is given keys (--keys BUNDLE from `export
/// --keys-out`, or --key SECRET on a stopped server's store), and as
/// [erased] for an erased conversation whatever the keys.
#[derive(Debug, Parser)]
#[command(name = "replay-tool", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress bars, no summaries on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the whole log as a portable, versioned file (hash chain included).
    #[command(after_help = EXIT_CODES)]
    Export(ExportArgs),
    /// Create a store from an exported file (into an empty or new directory only).
    #[command(after_help = EXIT_CODES)]
    Import(ImportArgs),
    /// Recompute the hash chain and check every invariant; exit 1 at the first
    /// fault. With --key, also that the server holding that key wrote the
    /// head (an export's or a server's); with --expect-head, that the log
    /// holds a head published earlier.
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Rebuild every read model from position 1 (in memory, as the server keeps
    /// them) and report events/s.
    #[command(after_help = EXIT_CODES)]
    Rebuild(SourceOnly),
    /// The history of a conversation, a staff member or a company: who did
    /// what, when, through which command.
    #[command(after_help = EXIT_CODES)]
    Audit(AuditArgs),
    /// Who could view a conversation at an instant, or what a staff member
    /// could view, and by which rule (R1–R6).
    #[command(after_help = EXIT_CODES)]
    Access(AccessArgs),
    /// The closed-enquiry chat-history report (CSV or JSON), private messages
    /// included and marked.
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
    /// Write a large synthetic store, deterministic from a seed (for benchmarks).
    #[command(after_help = EXIT_CODES)]
    Generate(GenerateArgs),
    /// Measure verify, rebuild and report throughput and peak memory on a log.
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
}

/// Where the log is read from: exactly one of them.
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "source")]
pub struct SourceArgs {
    /// A stopped server's data directory (the server's --data-dir, holding
    /// store/), or its store directory; read through a temporary copy.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A log store: a postgres:// URL, read through read-only sessions
    /// (default_transaction_read_only) with no writer, so nothing can be
    /// written; or a sled store directory (as --data-dir).
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// An exported log file (see `export`).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A running server's URL, http(s)://HOST[:PORT][/PREFIX] (with --token):
    /// its log is fetched page by page (GET /log) into a temporary file under
    /// --scratch-dir. https certificates are checked (Mozilla roots, and
    /// --server-ca).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct SourceOpts {
    #[command(flatten)]
    pub source: SourceArgs,
    /// For --server: a server operator's token (`backchannel token
    /// --operator`), or an owner's or admin's while their company is the
    /// server's only one (the log is one hash chain across companies).
    #[arg(long, value_name = "TOKEN", requires = "server")]
    pub token: Option<String>,
    /// For an https --server: a PEM CA certificate to trust besides the
    /// Mozilla roots (a private CA, or the server's self-signed certificate).
    #[arg(long, value_name = "PEM", requires = "server")]
    pub server_ca: Option<PathBuf>,
    /// Records per `GET /log` page for --server (tests use small pages).
    #[arg(long, value_name = "N", hide = true, default_value_t = crate::remote::PAGE,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub server_page: u64,
    /// Where the copy of a --data-dir store, or a --server log, goes (default:
    /// the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SourceOnly {
    #[command(flatten)]
    pub source: SourceOpts,
    #[command(flatten)]
    pub keys: ReadKeyArgs,
}

/// The keys customer data is opened with (SPEC section 12). Without them a
/// conversation's customer name and message bodies show as `[sealed]`; an
/// erased conversation's show as `[erased]` whatever keys are given; data
/// stored before encryption existed shows as it is.
#[derive(Debug, Args)]
pub struct ReadKeyArgs {
    /// An auditor's key bundle, as `export --keys-out` writes it: the data
    /// keys of an export's conversations (in clear: keep it apart from the
    /// export) and the conversations that were erased.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub keys: Option<PathBuf>,
    /// The server's secret (a file, the server's `<data-dir>/secret`, or the
    /// configured secret itself): opens a stopped server's store with its own
    /// keys (its keys/ directory for --data-dir, read only; the data_keys
    /// table for a postgres:// --store).
    #[arg(long, value_name = "FILE|SECRET")]
    pub key: Option<String>,
}

/// The server's key for head MACs (see `eventlog`'s `mac.rs`).
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The server's secret, to authenticate the head with: a file (the
    /// server's `<data-dir>/secret`, hex, or a file holding the configured
    /// secret) or the configured secret itself (`--secret` /
    /// BACKCHANNEL_SECRET; prefer a file, arguments show in `ps`).
    #[arg(long, value_name = "FILE|SECRET")]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Check the head's MAC with this key (for --file and --server): a
    /// forged export, whose chain, head hash and trailer were recomputed,
    /// fails.
    #[command(flatten)]
    pub key: KeyArgs,
    /// A head published earlier (`GET /log/head`, or an export's summary):
    /// `HASH` (64 hex digits: the log's head must be that record) or
    /// `POSITION:HASH` (the record at POSITION must hash to HASH; the log may
    /// have grown since).
    #[arg(long, value_name = "[POSITION:]HASH")]
    pub expect_head: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Authenticate the exported head with this key (default for --data-dir
    /// DIR: the server's secret beside its store, DATA/secret, if any; for
    /// --server, the server's own MAC; for --file, the file's MAC, which
    /// --key must then verify).
    #[command(flatten)]
    pub key: KeyArgs,
    /// The file to write (`-`: stdout). An existing file is not overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write the auditor's key bundle to FILE (mode 0600, never
    /// overwritten): the data keys, in clear, of the exported conversations
    /// that still have one, and the conversations that were erased (JSON,
    /// format "backchannel-keys" version 1). Whoever holds it and the export
    /// reads those conversations' customer data: hand it over apart from the
    /// export. Needs --key (the server's secret unwraps the store's keys) and
    /// a store source (--data-dir, or --store).
    #[arg(long, value_name = "FILE")]
    pub keys_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The exported log file to import.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The store to create: a directory (missing or empty) or a postgres://
    /// URL of a database whose log is empty.
    #[arg(long, value_name = "DIR|URL")]
    pub into: PathBuf,
    /// Refuse the file unless its head's MAC verifies with this key. Without
    /// it, the file is imported with a warning that it was not authenticated.
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LineFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Args)]
#[group(id = "subject", required = true, multiple = false, args = ["conversation", "staff", "company"])]
pub struct AuditArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// A conversation's history.
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// What a staff member did, and what was done to them.
    #[arg(long, value_name = "ID")]
    pub staff: Option<String>,
    /// Everything in a company.
    #[arg(long, value_name = "ID")]
    pub company: Option<String>,
    /// Only the read audit (SPEC section 12): who opened the conversation's
    /// content (or what the staff member, or anyone in the company, opened),
    /// when, how and by which rule.
    #[arg(long)]
    pub access_log: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: LineFormat,
    #[command(flatten)]
    pub keys: ReadKeyArgs,
}

#[derive(Debug, Args)]
#[group(id = "subject", required = true, multiple = false, args = ["conversation", "staff"])]
pub struct AccessArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Who could view this conversation (every staff member of its company).
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// Which conversations this staff member could view.
    #[arg(long, value_name = "ID")]
    pub staff: Option<String>,
    /// The instant, RFC 3339 (e.g. 2025-03-01T09:30:00Z): the log up to the
    /// last event recorded at or before it. Default: the end of the log.
    #[arg(long, value_name = "TIME", conflicts_with = "at_position")]
    pub at: Option<String>,
    /// The instant as a global position: just after that event.
    #[arg(long, value_name = "N")]
    pub at_position: Option<u64>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: LineFormat,
    #[command(flatten)]
    pub keys: ReadKeyArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormatArg {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Conversations closed at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// ... and before this time (RFC 3339, excluded).
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Only this group.
    #[arg(long, value_name = "ID")]
    pub group: Option<String>,
    /// Only this company (implied by --as).
    #[arg(long, value_name = "ID")]
    pub company: Option<String>,
    /// Apply this staff member's permissions (SPEC section 4): owner and admins
    /// all groups, supervisors and ENQUIRY_HISTORY holders their groups,
    /// anyone else is refused.
    #[arg(long = "as", value_name = "STAFF_ID")]
    pub viewer: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ReportFormatArg,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub keys: ReadKeyArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Conversations to open (about 10 events each).
    #[arg(long, default_value_t = 1000)]
    pub conversations: u64,
    #[arg(long, default_value_t = 3)]
    pub companies: u32,
    /// Stop once this many events are written.
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// The store directory to create (missing or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Run one measurement in this process and print it as a JSON line. Without
    /// it, every measurement runs in a child process of its own (so each peak
    /// memory is its own) and a table compares them to the raw scan.
    #[arg(long, value_enum)]
    pub only: Option<BenchPart>,
    /// The report's range (RFC 3339; default: everything, i.e. every closed
    /// enquiry of the log).
    #[arg(long, value_name = "TIME")]
    pub report_from: Option<String>,
    #[arg(long, value_name = "TIME")]
    pub report_to: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchPart {
    Scan,
    Verify,
    Rebuild,
    Report,
}
