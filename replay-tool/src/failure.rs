//! Exit codes, and the one error type every command returns.

use std::fmt;
use std::process::ExitCode;

/// What went wrong, as the exit code says it. Documented in `--help` (see
/// `cli::EXIT_CODES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: the log is broken — verify found a fault, or a command met a
    /// corrupt, tampered or truncated log (the message names the position).
    Broken,
    /// 2: bad command line (clap's own code too): flags, ids, times.
    Usage,
    /// 3: the source or destination cannot be used: a store in use by a running
    /// server, a missing path, not a store, a non-empty import target, an
    /// unreachable `--server`.
    Unavailable,
    /// 4: refused: the `--as` staff member may not read this report, or the
    /// `--server` refused the token.
    Forbidden,
    /// 5: an id the log does not know (conversation, staff, company, group).
    NotFound,
    /// 6: the input is not a Backchannel log export at all (empty, foreign,
    /// unsupported version).
    BadInput,
    /// 7: reading or writing failed (disk, pipe).
    Io,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Broken => 1,
            Kind::Usage => 2,
            Kind::Unavailable => 3,
            Kind::Forbidden => 4,
            Kind::NotFound => 5,
            Kind::BadInput => 6,
            Kind::Io => 7,
        }
    }
}

#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    /// stdout was closed by its reader (`| head`).
    pub broken_pipe: bool,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            broken_pipe: false,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Opening or reading `what` (a path, a flag and its path) failed: a missing
/// path is `Unavailable`, any other error `Io`.
pub fn input(what: impl fmt::Display, err: std::io::Error) -> Failure {
    let kind = if err.kind() == std::io::ErrorKind::NotFound {
        Kind::Unavailable
    } else {
        Kind::Io
    };
    Failure::new(kind, format!("{what}: {err}"))
}

/// A write to stdout failed; a closed pipe (`| head`) is not worth a message.
pub fn output(err: std::io::Error) -> Failure {
    let mut failure = Failure::new(Kind::Io, format!("writing the output failed: {err}"));
    failure.broken_pipe = err.kind() == std::io::ErrorKind::BrokenPipe;
    failure
}
