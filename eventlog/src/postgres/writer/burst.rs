//! One group's writes and `COMMIT`, sent as one pipelined burst.
//!
//! [`send`] hands every statement to the connection (encoded and queued, in
//! order) before it returns, so the writer can send the next group's burst
//! behind this one on the same connection while this one commits. `COMMIT`
//! is sent only if every statement before it was handed over: a statement
//! that fails on the client (its parameters did not encode) was never sent,
//! so the burst stops there and ends with `ROLLBACK`, and the group is known
//! not committed. Without that check the transaction could commit without
//! the statement that failed, say a head moved over events never inserted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::group::{Assumed, Group};
use super::{WriterConn, other, storage_error};
use crate::error::StorageError;

/// A statement's answer, still to come.
type Answer = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send>>;

/// A statement's parameters, owned by its answer's future.
type Params = Vec<Box<dyn ToSql + Send + Sync>>;

/// A statement handed to the connection.
enum Handed {
    /// It was answered on the spot: it failed on the client, never sent.
    Answered(Result<u64, tokio_postgres::Error>),
    /// Sent; its answer is still to come.
    Waiting(Answer),
}

impl Handed {
    async fn answer(self) -> Result<u64, tokio_postgres::Error> {
        match self {
            Handed::Answered(result) => result,
            Handed::Waiting(answer) => answer.await,
        }
    }
}

/// A group's burst, handed to the connection.
pub(super) struct Burst {
    writes: Vec<Handed>,
    end: Handed,
    /// `false` when the burst ends with `ROLLBACK` (a write was not sent).
    committing: bool,
}

/// The server's answers to a burst.
pub(super) struct Answers {
    writes: Vec<Result<u64, tokio_postgres::Error>>,
    end: Result<u64, tokio_postgres::Error>,
    committing: bool,
}

pub(super) enum Committed {
    Yes,
    /// Known not committed.
    No(StorageError),
    /// Perhaps committed.
    Unknown(StorageError),
}

/// Sends `group`'s writes and `COMMIT`: after the slow path's lock and reads
/// (`assumed` is `None`), the inserts, the streams' versions, the head, the
/// doorbell; on the fast path (`assumed`), `BEGIN` first, then the head lock
/// that checks the head is the assumed one, and the streams' versions
/// checked against the assumed ones (either check failing aborts the
/// transaction). Takes the group's rows.
pub(super) async fn send(conn: &WriterConn, group: &mut Group, assumed: Option<Assumed>) -> Burst {
    let mut ids = Vec::with_capacity(group.accepted.len());
    let mut firsts = Vec::with_capacity(group.accepted.len());
    let mut lasts = Vec::with_capacity(group.accepted.len());
    let mut command_versions = Vec::with_capacity(group.accepted.len());
    for (command, outcome) in &group.accepted {
        ids.push(super::command_uuid(*command));
        firsts.push(as_i64(outcome.first_position));
        lasts.push(as_i64(outcome.last_position));
        command_versions.push(as_i64(outcome.stream_version));
    }
    let mut stream_keys: Vec<Vec<u8>> = Vec::with_capacity(group.stream_heads.len());
    let mut stream_versions: Vec<i64> = Vec::with_capacity(group.stream_heads.len());
    let mut old_versions: Vec<i64> = Vec::with_capacity(group.stream_heads.len());
    for (stream, version) in &group.stream_heads {
        let key = super::stream_key(stream);
        let old = group.stored_streams.get(&key).copied().unwrap_or(0);
        old_versions.push(as_i64(old));
        stream_versions.push(as_i64(*version));
        stream_keys.push(key);
    }
    let moved = old_versions.iter().filter(|v| **v > 0).count() as i64;
    let head = group.next_position - 1;
    let chain = group.chain.to_vec();
    let rows = std::mem::take(&mut group.rows);
    let statements = &conn.statements;
    let client = &conn.client;
    let events: Params = vec![
        Box::new(rows.positions),
        Box::new(rows.streams),
        Box::new(rows.versions),
        Box::new(rows.commands),
        Box::new(rows.records),
    ];
    let commands: Params = vec![
        Box::new(ids),
        Box::new(firsts),
        Box::new(lasts),
        Box::new(command_versions),
    ];
    let notify: Params = vec![Box::new(head.to_string())];
    let mut writes: Vec<Answer> = Vec::with_capacity(6);
    match assumed {
        Some(assumed) => {
            writes.push(simple(client, "BEGIN"));
            writes.push(execute(
                client,
                &statements.guard_head,
                vec![
                    Box::new(as_i64(head)),
                    Box::new(as_i64(assumed.position)),
                    Box::new(assumed.hash.to_vec()),
                    Box::new(chain),
                ],
            ));
            writes.push(execute(client, &statements.insert_events, events));
            writes.push(execute(client, &statements.insert_commands, commands));
            writes.push(execute(
                client,
                &statements.guard_streams,
                vec![
                    Box::new(stream_keys),
                    Box::new(old_versions),
                    Box::new(stream_versions),
                    Box::new(moved),
                ],
            ));
        }
        None => {
            writes.push(execute(client, &statements.insert_events, events));
            writes.push(execute(client, &statements.insert_commands, commands));
            writes.push(execute(
                client,
                &statements.upsert_streams,
                vec![Box::new(stream_keys), Box::new(stream_versions)],
            ));
            writes.push(execute(
                client,
                &statements.update_head,
                vec![Box::new(as_i64(head)), Box::new(chain)],
            ));
        }
    }
    writes.push(execute(client, &statements.notify, notify));
    hand_over_all(client, writes).await
}

/// Hands `writes` to the connection in order, then `COMMIT`; or, at the
/// first write that fails on the client, nothing more of them and `ROLLBACK`.
async fn hand_over_all(client: &Arc<Client>, writes: Vec<Answer>) -> Burst {
    let mut handed = Vec::with_capacity(writes.len());
    let mut committing = true;
    for write in writes {
        let write = hand_over(write).await;
        let refused = matches!(&write, Handed::Answered(Err(err)) if err.as_db_error().is_none());
        handed.push(write);
        if refused {
            committing = false;
            break;
        }
    }
    let end = match committing {
        true => hand_over(simple(client, "COMMIT")).await,
        false => hand_over(simple(client, "ROLLBACK")).await,
    };
    Burst {
        writes: handed,
        end,
        committing,
    }
}

impl Burst {
    /// Waits for the server's answers (in order, as it sends them).
    pub(super) async fn answers(self) -> Answers {
        let mut writes = Vec::with_capacity(self.writes.len());
        for write in self.writes {
            writes.push(write.answer().await);
        }
        Answers {
            writes,
            end: self.end.answer().await,
            committing: self.committing,
        }
    }
}

impl Answers {
    /// The group's outcome; `warning` is a notice that a wait for the
    /// synchronous standby was cancelled, perhaps for this commit.
    pub(super) fn outcome(self, warning: Option<String>) -> Committed {
        // A statement the server refused aborted the transaction: COMMIT
        // rolled it back, whatever it answered.
        if let Some(err) = self
            .writes
            .iter()
            .filter_map(|w| w.as_ref().err())
            .find(|err| err.as_db_error().is_some())
        {
            return Committed::No(other(format!("the append transaction failed: {err}")));
        }
        if !self.committing {
            let why = self.writes.into_iter().find_map(Result::err);
            return Committed::No(other(format!(
                "a write of the group could not be sent ({}); rolled back",
                why.map_or_else(|| "no error".to_owned(), |e| e.to_string())
            )));
        }
        match self.end {
            Err(err) if err.as_db_error().is_some() => Committed::No(storage_error(err)),
            Err(err) => Committed::Unknown(storage_error(err)),
            Ok(_) => {
                if let Some(err) = self.writes.into_iter().find_map(Result::err) {
                    // A transport error before a successful COMMIT cannot
                    // happen on one connection; do not trust it either way.
                    return Committed::Unknown(storage_error(err));
                }
                match warning {
                    Some(warning) => Committed::Unknown(other(format!(
                        "COMMIT returned with a warning: {warning}"
                    ))),
                    None => Committed::Yes,
                }
            }
        }
    }
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Polls `answer` once, which encodes the statement and queues it on the
/// connection (or fails on the client, sending nothing).
async fn hand_over(mut answer: Answer) -> Handed {
    match std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await {
        Poll::Ready(result) => Handed::Answered(result),
        Poll::Pending => Handed::Waiting(answer),
    }
}

fn simple(client: &Arc<Client>, sql: &'static str) -> Answer {
    let client = Arc::clone(client);
    Box::pin(async move { client.batch_execute(sql).await.map(|()| 0) })
}

fn execute(client: &Arc<Client>, statement: &Statement, params: Params) -> Answer {
    let client = Arc::clone(client);
    let statement = statement.clone();
    Box::pin(async move {
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.execute(&statement, &params).await
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio_postgres::NoTls;

    use super::*;

    /// Starts a throwaway cluster with a table `t (x bigint)`; `writes`
    /// builds a burst from the client and a prepared `INSERT INTO t`.
    /// Returns the burst's outcome (with `warning`) and the rows `t` holds.
    async fn burst_on_a_table(
        writes: impl Fn(&Arc<Client>, &Statement) -> Vec<Answer>,
        warning: Option<&str>,
    ) -> (Committed, i64) {
        let cluster = backchannel_pgtest::PgCluster::start();
        let (client, connection) = tokio_postgres::connect(&cluster.url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE t (x bigint)")
            .await
            .unwrap();
        let insert = client.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
        let client = Arc::new(client);
        let burst = hand_over_all(&client, writes(&client, &insert)).await;
        let outcome = burst.answers().await.outcome(warning.map(str::to_owned));
        let row = client.query_one("SELECT count(*) FROM t", &[]).await;
        (outcome, row.unwrap().get(0))
    }

    #[tokio::test]
    async fn a_write_that_fails_on_the_client_rolls_the_group_back() {
        let (outcome, rows) = burst_on_a_table(
            |client, insert| {
                vec![
                    simple(client, "BEGIN"),
                    execute(client, insert, vec![Box::new(1_i64)]),
                    // A text for a bigint: refused by the client, never sent.
                    execute(client, insert, vec![Box::new("two".to_owned())]),
                    execute(client, insert, vec![Box::new(3_i64)]),
                ]
            },
            None,
        )
        .await;
        assert!(matches!(outcome, Committed::No(_)));
        assert_eq!(rows, 0);
    }

    #[tokio::test]
    async fn a_burst_whose_writes_were_all_sent_commits() {
        let sent_in_full = |client: &Arc<Client>, insert: &Statement| {
            vec![
                simple(client, "BEGIN"),
                execute(client, insert, vec![Box::new(1_i64)]),
                execute(client, insert, vec![Box::new(3_i64)]),
            ]
        };
        let (outcome, rows) = burst_on_a_table(sent_in_full, None).await;
        assert!(matches!(outcome, Committed::Yes));
        assert_eq!(rows, 2);
        // A warning about the standby makes the same answers unknown.
        let warning = Some("canceling wait for synchronous replication");
        let (outcome, rows) = burst_on_a_table(sent_in_full, warning).await;
        assert!(matches!(outcome, Committed::Unknown(_)));
        assert_eq!(
            rows, 2,
            "the server committed; only the outcome is in doubt"
        );
    }
}
