//! One file per command. Each takes its parsed arguments and returns a
//! [`Failure`] with the exit code to use.

pub mod access;
pub mod audit;
pub mod bench;
pub mod export;
pub mod generate;
pub mod import;
pub mod rebuild;
pub mod report;
pub mod verify;

use std::str::FromStr;

use backchannel_eventlog::RecordedAt;
use backchannel_projections::time::parse_rfc3339;
use indicatif::HumanCount;

use backchannel_eventlog::KeyStore;

use crate::cli::{ReadKeyArgs, SourceOpts};
use crate::failure::{Failure, Kind};
use crate::source::{Source, SourceError};

/// Opens the one source the flags name, with the keys `keys` names to open
/// customer data with (an auditor's bundle, or a store's own keys).
pub fn open_reading_source(
    opts: &SourceOpts,
    keys: &ReadKeyArgs,
    quiet: bool,
) -> Result<Source, Failure> {
    // Bad key flags fail before a store is copied.
    let bundle = keys
        .keys
        .as_deref()
        .map(|path| crate::bundle::load(path).map(|keys| (path, keys)))
        .transpose()?;
    let server_key = keys
        .key
        .as_deref()
        .map(crate::key::parse_server_key)
        .transpose()?;
    let source = open_source(opts, quiet)?;
    if let Some((path, keys)) = bundle {
        let live = keys.values().filter(|k| k.is_some()).count();
        note(
            quiet,
            format_args!(
                "customer data opened with the key bundle {} ({live} keys, {} erased \
                 conversations)",
                path.display(),
                keys.len() - live
            ),
        );
        return Ok(source.with_keys(KeyStore::bundle(keys)));
    }
    if let Some(key) = server_key {
        let source = source.with_store_keys(&key.wrap)?;
        note(
            quiet,
            format_args!(
                "customer data opened with the keys of {}",
                source.describe()
            ),
        );
        return Ok(source);
    }
    Ok(source)
}

/// Opens the one source the flags name.
pub fn open_source(opts: &SourceOpts, quiet: bool) -> Result<Source, Failure> {
    if let Some(url) = &opts.source.server {
        let Some(token) = &opts.token else {
            return Err(Failure::new(
                Kind::Usage,
                "--server needs --token (an operator token, or an owner's or admin's)",
            ));
        };
        let server = crate::remote::Server {
            url,
            token,
            ca: opts.server_ca.as_deref(),
        };
        return Source::open_server(
            &server,
            opts.server_page,
            opts.scratch_dir.as_deref(),
            quiet,
        );
    }
    if let Some(store) = &opts.source.store {
        let spec = backchannel_eventlog::StoreSpec::parse(store)
            .map_err(|err| Failure::new(Kind::Usage, err.to_string()))?;
        return match spec.sled_path() {
            Some(dir) => Source::open_store_showing(
                dir,
                opts.scratch_dir.as_deref(),
                &crate::progress::Progress::new("", quiet),
            ),
            None => Source::open_postgres(&spec, opts.scratch_dir.as_deref()),
        };
    }
    if let Some(dir) = &opts.source.data_dir {
        return Source::open_store_showing(
            dir,
            opts.scratch_dir.as_deref(),
            &crate::progress::Progress::new("", quiet),
        );
    }
    if let Some(file) = &opts.source.file {
        return Source::open_file(file);
    }
    Err(Failure::new(
        Kind::Usage,
        "name a source: --data-dir DIR, --store STORE, --file FILE or --server URL --token T",
    ))
}

/// A reading error part way through: the log is broken (with its position),
/// or the disk failed.
pub fn source_failure(err: SourceError) -> Failure {
    match &err {
        SourceError::Store(backchannel_eventlog::Error::Storage(_)) => {
            Failure::new(Kind::Io, err.to_string())
        }
        SourceError::File {
            source: backchannel_eventlog::portable::PortableError::Io(_),
            ..
        } => Failure::new(Kind::Io, err.to_string()),
        // A key that does not unwrap: --key is not this store's server's.
        SourceError::Keys(backchannel_eventlog::KeyStoreError::Damaged { .. }) => {
            Failure::new(Kind::Usage, err.to_string())
        }
        SourceError::Keys(_) => Failure::new(Kind::Io, err.to_string()),
        _ => Failure::new(Kind::Broken, err.to_string()),
    }
}

/// Parses an id flag.
pub fn parse_id<T: FromStr>(flag: &str, value: &str) -> Result<T, Failure>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|err| Failure::new(Kind::Usage, format!("--{flag} {value:?}: {err}")))
}

pub fn parse_time(flag: &str, value: &str) -> Result<RecordedAt, Failure> {
    parse_rfc3339(value).map_err(|err| Failure::new(Kind::Usage, format!("--{flag}: {err}")))
}

/// Summaries go to stderr, so stdout stays data only.
pub fn note(quiet: bool, message: std::fmt::Arguments<'_>) {
    if !quiet {
        eprintln!("{message}");
    }
}

/// Events per second, for humans (`297,611 events/s`).
pub fn rate(events: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "n/a".to_owned();
    }
    let per_second = events as f64 / seconds;
    format!("{} events/s", HumanCount(per_second.round() as u64))
}
