//! One append group as the writer builds it: the state it was decided on
//! (read under the head lock, or assumed from what this writer committed),
//! each append's answer, and the rows to insert.

use std::collections::HashMap;

use backchannel_domain::events::StreamId;
use backchannel_domain::ids::{CommandId, EventId};
use tokio_postgres::Client;
use tokio_postgres::Statement;

use super::super::{command_uuid, stream_key};
use super::{AppendRequest, MAX_FAST_BACKOFF, MAX_KNOWN_STREAMS, other};
use crate::compose::ChainEnd;
use crate::envelope::{AppendOutcome, Envelope, ExpectedVersion, Hash, RecordedAt};
use crate::error::{AppendError, Error, StorageError};

/// One append's answer as decided under the lock.
pub(super) enum Decided {
    /// Final whatever the commit does (a rejection, or a dedupe from the
    /// committed log).
    Final(Result<AppendOutcome, AppendError>),
    /// Holds if and only if the group commits.
    Pending(AppendOutcome),
}

/// The state read under the lock, plus the group's changes so far.
pub(super) struct Group {
    pub(super) next_position: u64,
    pub(super) chain: Hash,
    pub(super) recorded_at: RecordedAt,
    pub(super) stored_commands: HashMap<CommandId, AppendOutcome>,
    pub(super) commands: HashMap<CommandId, AppendOutcome>,
    pub(super) stored_streams: HashMap<Vec<u8>, u64>,
    pub(super) stream_heads: HashMap<StreamId, u64>,
    pub(super) rows: Rows,
    pub(super) accepted: Vec<(CommandId, AppendOutcome)>,
}

/// Rows for the events table, one array per column.
#[derive(Default)]
pub(crate) struct Rows {
    pub(super) positions: Vec<i64>,
    pub(super) streams: Vec<Vec<u8>>,
    pub(super) versions: Vec<i64>,
    pub(super) commands: Vec<uuid::Uuid>,
    pub(super) records: Vec<Vec<u8>>,
}

impl Rows {
    pub(crate) fn push(&mut self, envelope: &Envelope, record: Vec<u8>) -> Result<(), Error> {
        self.positions
            .push(super::super::to_i64(envelope.position)?);
        self.streams.push(stream_key(&envelope.stream));
        self.versions
            .push(super::super::to_i64(envelope.stream_version)?);
        self.commands.push(command_uuid(envelope.command_id));
        self.records.push(record);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.positions.truncate(len);
        self.streams.truncate(len);
        self.versions.truncate(len);
        self.commands.truncate(len);
        self.records.truncate(len);
    }

    /// Inserts the rows and empties them.
    pub(crate) async fn insert(
        &mut self,
        client: &Client,
        statement: &Statement,
    ) -> Result<(), tokio_postgres::Error> {
        if self.positions.is_empty() {
            return Ok(());
        }
        client
            .execute(
                statement,
                &[
                    &self.positions,
                    &self.streams,
                    &self.versions,
                    &self.commands,
                    &self.records,
                ],
            )
            .await?;
        self.truncate(0);
        Ok(())
    }
}

/// What the writer assumes of the committed state: the head and the versions
/// of the streams it read under the lock or wrote since. Right as long as no
/// other node committed; the fast path checks that under the lock.
#[derive(Default)]
pub(super) struct Known {
    pub(super) head: Option<(u64, Hash)>,
    pub(super) streams: HashMap<StreamId, u64>,
    /// Groups to send on the slow path before trying the fast one again.
    pub(super) skip: u32,
    /// The next failure's `skip`: doubles with each fast-path failure in a
    /// row (as when other nodes keep committing), up to [`MAX_FAST_BACKOFF`].
    pub(super) backoff: u32,
}

impl Known {
    pub(super) fn forget(&mut self) {
        self.head = None;
        self.streams.clear();
    }

    /// The state read under the lock: the head and each stream of `requests`
    /// (absent means version 0).
    pub(super) fn read(&mut self, head: (u64, Hash), group: &Group, requests: &[AppendRequest]) {
        if self.head != Some(head) {
            self.streams.clear();
        }
        self.head = Some(head);
        for request in requests {
            for (stream, _) in &request.expected {
                let version = group
                    .stored_streams
                    .get(&stream_key(stream))
                    .copied()
                    .unwrap_or(0);
                self.streams.insert(*stream, version);
            }
        }
    }

    /// The fast path failed its checks: skip it for a while.
    pub(super) fn fast_failed(&mut self) {
        self.forget();
        self.skip = self.backoff.max(1);
        self.backoff = (self.skip * 2).min(MAX_FAST_BACKOFF);
    }

    /// `group` committed on top of what is known.
    pub(super) fn committed(&mut self, group: &Group) {
        if self.streams.len() + group.stream_heads.len() > MAX_KNOWN_STREAMS {
            self.streams.clear();
        }
        self.head = Some((group.next_position - 1, group.chain));
        self.streams
            .extend(group.stream_heads.iter().map(|(s, v)| (*s, *v)));
    }
}

/// The head a group was encoded on without reading it under the lock.
#[derive(Clone, Copy)]
pub(super) struct Assumed {
    pub(super) position: u64,
    pub(super) hash: Hash,
}

/// The group prepared on what the writer knows, for the fast path: `None`
/// unless the head is known, every stream's version is known or pinned by its
/// expectation (`Exact`, `NoStream`), and no append is refused on those
/// versions (a refusal is only decided on versions read under the lock).
pub(super) fn assume(
    known: &mut Known,
    requests: &[AppendRequest],
) -> Option<(Group, Vec<Decided>, Assumed)> {
    if known.skip > 0 {
        known.skip -= 1;
        return None;
    }
    let (position, hash) = known.head?;
    let mut stored_streams = HashMap::new();
    for request in requests {
        for &(stream, expected) in &request.expected {
            let key = stream_key(&stream);
            if stored_streams.contains_key(&key) {
                continue;
            }
            let version = match (known.streams.get(&stream), expected) {
                (Some(&version), _) => version,
                (None, ExpectedVersion::Exact(version)) => version,
                (None, ExpectedVersion::NoStream) => 0,
                (None, ExpectedVersion::Any) => return None,
            };
            stored_streams.insert(key, version);
        }
    }
    let mut group = Group {
        next_position: position + 1,
        chain: hash,
        recorded_at: RecordedAt::now(),
        stored_commands: HashMap::new(),
        commands: HashMap::new(),
        stored_streams,
        stream_heads: HashMap::new(),
        rows: Rows::default(),
        accepted: Vec::new(),
    };
    let mut decided = Vec::with_capacity(requests.len());
    for request in requests {
        let answer = prepare(&mut group, request);
        if let Decided::Final(Err(AppendError::WrongExpectedVersion { .. })) = answer {
            return None;
        }
        decided.push(answer);
    }
    if group.accepted.is_empty() {
        return None;
    }
    Some((group, decided, Assumed { position, hash }))
}

/// The outcomes of the commands found in the `commands` table (rows of
/// `FIND_COMMANDS`), as deduplicated answers.
pub(super) fn commands_found(
    rows: Vec<tokio_postgres::Row>,
) -> Result<HashMap<CommandId, AppendOutcome>, StorageError> {
    let convert = |v: i64| u64::try_from(v).map_err(|_| other(format!("{v} is out of range")));
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: uuid::Uuid = row.try_get(0).map_err(super::storage_error)?;
        let column = |i: usize| row.try_get::<_, i64>(i).map_err(super::storage_error);
        let outcome = AppendOutcome {
            first_position: convert(column(1)?)?,
            last_position: convert(column(2)?)?,
            stream_version: convert(column(3)?)?,
            deduplicated: true,
        };
        found.insert(CommandId::from_bytes(*id.as_bytes()), outcome);
    }
    Ok(found)
}

/// Validates one append against the locked state plus the group so far and
/// adds its rows; a rejection leaves the group untouched.
pub(super) fn prepare(group: &mut Group, request: &AppendRequest) -> Decided {
    let command_id = request.meta.command_id;
    if let Some(first) = group.commands.get(&command_id) {
        return Decided::Pending(AppendOutcome {
            deduplicated: true,
            ..*first
        });
    }
    if let Some(stored) = group.stored_commands.get(&command_id) {
        return Decided::Final(Ok(*stored));
    }
    let mut versions: Vec<(StreamId, u64)> = Vec::with_capacity(request.expected.len());
    for &(stream, expected) in &request.expected {
        let current = match group.stream_heads.get(&stream) {
            Some(&version) => version,
            None => group
                .stored_streams
                .get(&stream_key(&stream))
                .copied()
                .unwrap_or(0),
        };
        if !expected.accepts(current) {
            return Decided::Final(Err(AppendError::WrongExpectedVersion {
                stream,
                expected,
                current,
            }));
        }
        versions.push((stream, current));
    }
    let first_position = group.next_position;
    let mut end = ChainEnd::after(first_position - 1, group.chain);
    let mut last_version = 0;
    let mark = group.rows.len();
    for (index, event) in request.events.iter().enumerate() {
        let stream = event.stream();
        let Some(version) = versions.iter_mut().find(|(s, _)| *s == stream) else {
            group.rows.truncate(mark);
            return Decided::Final(Err(AppendError::WrongStream {
                index,
                expected: request.expected.first().map_or(stream, |(s, _)| *s),
                found: stream,
            }));
        };
        version.1 += 1;
        last_version = version.1;
        let mut record = Vec::new();
        let composed = end.compose(
            &request.meta,
            group.recorded_at,
            last_version,
            EventId::new(),
            event,
            &mut record,
        );
        let envelope = match composed {
            Ok(envelope) => envelope,
            Err(source) => {
                group.rows.truncate(mark);
                return Decided::Final(Err(AppendError::Encode { index, source }));
            }
        };
        if let Err(err) = group.rows.push(&envelope, record) {
            group.rows.truncate(mark);
            return Decided::Final(Err(AppendError::Storage(other(err.to_string()))));
        }
    }
    let count = request.events.len() as u64;
    let outcome = AppendOutcome::appended(first_position, count, last_version);
    group.next_position += count;
    group.chain = end.head_hash();
    for (stream, version) in versions {
        group.stream_heads.insert(stream, version);
    }
    group.commands.insert(command_id, outcome);
    group.accepted.push((command_id, outcome));
    Decided::Pending(outcome)
}
