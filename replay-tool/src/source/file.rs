//! The passes over an export file: the first checks all of it while it
//! replays, later ones trust it while it is unchanged ([`Stamp`]).

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, PoisonError, mpsc};

use backchannel_eventlog::portable::{PortableError, PortableReader};
use backchannel_eventlog::{RecordedEvent, codec};

use super::SourceError;

/// What a file looked like when it was verified: later passes trust it only
/// while its length and modification time are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Records per batch handed from the checking thread to the replay.
const BATCH: usize = 1024;

/// A batch of checked records: their bytes back to back, and where each ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Replays `from..=to` of the file at `path`: a checked pass, or a trusted
/// one while the file is as a checked pass of this process left it
/// (`verified`).
pub(super) fn replay(
    path: &Path,
    verified: &Mutex<Option<Stamp>>,
    from: u64,
    to: u64,
    prepare: &dyn Fn(&mut RecordedEvent) -> Result<(), SourceError>,
    visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let stamp = Stamp::of(path);
    let trusted = {
        let verified = verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.is_some() && *verified == stamp
    };
    let pass = Pass {
        path,
        from,
        to,
        prepare,
        visit,
    };
    if trusted {
        return pass.trusted();
    }
    pass.checked()?;
    if stamp.is_some() && Stamp::of(path) == stamp {
        *verified.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
    }
    Ok(())
}

/// What a fault reading the file at `path` becomes.
pub(super) fn fault(path: &Path) -> impl Fn(PortableError) -> SourceError + '_ {
    move |source| SourceError::File {
        path: path.to_owned(),
        source,
    }
}

/// The file at `path`, opened for a pass.
pub(super) fn read(path: &Path) -> Result<PortableReader<BufReader<File>>, SourceError> {
    let fail = fault(path);
    let file = File::open(path).map_err(|err| fail(err.into()))?;
    PortableReader::new(BufReader::with_capacity(1 << 20, file)).map_err(fail)
}

/// One pass over the file at `path`, visiting `from..=to`: each record is
/// made ready with `prepare`, then handed to `visit`.
struct Pass<'p> {
    path: &'p Path,
    from: u64,
    to: u64,
    prepare: &'p dyn Fn(&mut RecordedEvent) -> Result<(), SourceError>,
    visit: &'p mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
}

impl Pass<'_> {
    /// A pass over a file that checks all of it, whatever `from` and `to` say:
    /// a thread reads the file and checks framing, positions, hash links, stream
    /// versions, the head hash and the trailer checksum (`next_checked_raw`),
    /// handing each record on only once it passed; this thread decodes the
    /// payloads and visits `from..=to`. The two overlap, so the check costs
    /// little time. Any fault fails the pass, also one after `to` or after the
    /// visitor stopped.
    fn checked(self) -> Result<(), SourceError> {
        let fail = fault(self.path);
        let mut reader = read(self.path)?;
        let (sender, batches) = mpsc::sync_channel::<Batch>(8);
        std::thread::scope(|scope| {
            let checker = scope.spawn(move || {
                let mut sender = Some(sender);
                let mut batch = Batch::default();
                while let Some(checked) = reader.next_checked_raw() {
                    checked?;
                    let Some(to_replay) = &sender else { continue };
                    batch.bytes.extend_from_slice(reader.record_bytes());
                    batch.ends.push(batch.bytes.len());
                    if batch.ends.len() == BATCH
                        && to_replay.send(std::mem::take(&mut batch)).is_err()
                    {
                        // The replay stopped: keep checking, stop handing over.
                        sender = None;
                    }
                }
                if let Some(to_replay) = sender
                    && !batch.ends.is_empty()
                {
                    let _ = to_replay.send(batch);
                }
                Ok::<(), PortableError>(())
            });
            let mut position = 0u64;
            let mut replayed = Ok(());
            'batches: for batch in batches.iter() {
                let mut start = 0;
                for &end in &batch.ends {
                    let bytes = &batch.bytes[start..end];
                    start = end;
                    position += 1;
                    if position > self.to {
                        break 'batches;
                    }
                    if position < self.from {
                        continue;
                    }
                    match codec::decode_record(bytes) {
                        Ok(mut event) => {
                            if let Err(err) = (self.prepare)(&mut event) {
                                replayed = Err(err);
                                break 'batches;
                            }
                            if (self.visit)(&event).is_break() {
                                break 'batches;
                            }
                        }
                        Err(source) => {
                            replayed = Err(SourceError::Record {
                                path: self.path.to_owned(),
                                source: backchannel_eventlog::Error::Corrupt { position, source },
                            });
                            break 'batches;
                        }
                    }
                }
            }
            drop(batches);
            let checked = checker.join().unwrap_or_else(|_| {
                Err(PortableError::Io(std::io::Error::other("the check failed")))
            });
            // A record the replay could not decode comes before any fault the
            // check found later.
            replayed?;
            checked.map_err(fail)
        })
    }

    /// A later pass over a file a pass of this process verified completely:
    /// records are decoded and their positions checked, the chain not again.
    fn trusted(self) -> Result<(), SourceError> {
        let fail = fault(self.path);
        let mut reader = read(self.path)?;
        while let Some(event) = reader.next_trusted() {
            let mut event = event.map_err(&fail)?;
            let position = event.envelope.position;
            if position > self.to {
                break;
            }
            if position < self.from {
                continue;
            }
            (self.prepare)(&mut event)?;
            if (self.visit)(&event).is_break() {
                break;
            }
        }
        Ok(())
    }
}
