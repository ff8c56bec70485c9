//! Running a command: decide against the read models, append with the
//! versions the decision read, and decide again after losing a race.

use std::sync::PoisonError;
use std::time::Duration;

use backchannel_domain::State;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CommandId, CompanyId, CorrelationId};
use backchannel_domain::model::RoutingType;
use backchannel_domain::{Actor, Command, decide};
use backchannel_eventlog::{AppendError, AppendMeta, AppendOutcome, ExpectedVersion};

use crate::error::{ApiError, ApiResult};

use super::idempotency::{arguments_fingerprint, command_id, is_fingerprint};
use super::{Desk, Executed};

/// How often a command is decided again after losing a race for one of its
/// streams. Generous, because a company stream is shared by every directory
/// change and round-robin opening of the company (and, once several
/// processes share a log, by theirs); bounded, because each attempt waits
/// for the projections.
const MAX_ATTEMPTS: usize = 32;
/// Stripes of the per-company lock around company-stream decisions.
pub(super) const COMPANY_STRIPES: usize = 64;

/// How long a command that lost a race waits for the winning append to be
/// applied before deciding again anyway.
const STREAM_WAIT: Duration = Duration::from_secs(2);

impl Desk {
    /// Runs a command (see the module docs). `operation` names the mutation, so
    /// one idempotency key reused for another mutation is another command.
    pub async fn execute(
        &self,
        actor: Actor,
        operation: &str,
        command: Command,
        idempotency_key: Option<&str>,
    ) -> ApiResult<Executed> {
        let keyed = idempotency_key
            .map(|key| command_id(actor, operation, key))
            .transpose()?;
        self.execute_as(actor, operation, command, keyed).await
    }

    /// Runs a command under `keyed`, the command id an idempotency key
    /// derived (`None`: a fresh id, no idempotency). For callers whose key is
    /// not scoped to the actor (`startConversation`: see
    /// [`start_command_id`]).
    pub async fn execute_as(
        &self,
        actor: Actor,
        operation: &str,
        command: Command,
        keyed: Option<CommandId>,
    ) -> ApiResult<Executed> {
        let fingerprint = keyed.map(|_| arguments_fingerprint(operation, &command));
        if let Some(id) = keyed {
            let earlier = self
                .log
                .command_outcome(id)
                .await
                .map_err(|err| ApiError::internal("looking up a command", err))?;
            if let Some(outcome) = earlier {
                return self.retried(outcome, &command, fingerprint).await;
            }
        }
        // Unkeyed: a fresh command id and correlation id (`default` is `new`).
        let meta = AppendMeta {
            command_id: keyed.unwrap_or_default(),
            correlation_id: fingerprint.unwrap_or_default(),
            actor,
        };
        let _turn = match self.company_written_by(&command) {
            Some(company) => Some(self.company_turns[stripe(company)].lock().await),
            None => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let decided = {
                let models = self.models();
                let state = models.state();
                decide(state, &command, actor).map(|events| {
                    let expected = expectations(state, &command, &events);
                    (events, expected)
                })
            };
            let (events, expected) = match (decided, keyed) {
                (Ok(decided), _) => decided,
                // The same key may have been appended meanwhile (by another
                // node, e.g. two starting with `--demo`), and its effect
                // applied before this decision: the first answer, not a
                // refusal.
                (Err(refused), Some(id)) => match self.log.command_outcome(id).await {
                    Ok(Some(outcome)) => return self.retried(outcome, &command, fingerprint).await,
                    _ => return Err(refused.into()),
                },
                (Err(refused), None) => return Err(refused.into()),
            };
            if events.is_empty() {
                return Ok(Executed::default());
            }
            let appending = std::time::Instant::now();
            let appended = self.log.append_to_streams(expected, events, meta).await;
            if let Some(latency) = &self.commit_latency {
                latency.observe(appending.elapsed().as_secs_f64());
            }
            match appended {
                // A concurrent attempt with the same key got there first.
                Ok(outcome) if outcome.deduplicated => {
                    return self.retried(outcome, &command, fingerprint).await;
                }
                Ok(outcome) => return self.finish(outcome).await,
                Err(AppendError::WrongExpectedVersion {
                    stream, current, ..
                }) => {
                    tracing::debug!(
                        operation,
                        ?stream,
                        current,
                        "lost a race for a stream, deciding again"
                    );
                    // Wait for the append that won (possibly another node's,
                    // which this node's head may not know of yet).
                    self.wait_stream(stream, current).await?;
                    self.caught_up().await?;
                }
                Err(err) => return Err(ApiError::internal("appending", err)),
            }
        }
        Err(ApiError::Busy)
    }

    /// The answer to a retried key: the first attempt's, if it asked for the
    /// same thing. Its fingerprint is stored as the append's correlation id; an
    /// append from before fingerprints (a correlation id that is not a UUIDv8)
    /// is compared by its stream, as it was then.
    async fn retried(
        &self,
        outcome: AppendOutcome,
        command: &Command,
        fingerprint: Option<CorrelationId>,
    ) -> ApiResult<Executed> {
        let executed = self.finish(outcome).await?;
        let same = executed.events.first().is_none_or(|first| {
            let stored = first.envelope.correlation_id;
            match fingerprint {
                Some(fingerprint) if is_fingerprint(stored) => stored == fingerprint,
                _ => first.envelope.stream == command.stream(),
            }
        });
        if !same {
            return Err(ApiError::validation(
                "this idempotency key was already used for another request",
            ));
        }
        Ok(executed)
    }

    /// The company whose stream `command` may write (directory changes, and
    /// openings in a round-robin group, which take a turn), if any.
    fn company_written_by(&self, command: &Command) -> Option<CompanyId> {
        match command {
            Command::OpenConversation { company, group, .. } => {
                let models = self.models();
                let round_robin = models
                    .state()
                    .groups
                    .get(group)
                    .is_some_and(|g| g.routing == RoutingType::RoundRobin);
                round_robin.then_some(*company)
            }
            other => match other.stream() {
                StreamId::Company(company) => Some(company),
                StreamId::Conversation(_) | StreamId::ReadAudit(_) => None,
            },
        }
    }

    /// Waits for the projections to apply an append, then reads its events.
    async fn finish(&self, outcome: AppendOutcome) -> ApiResult<Executed> {
        self.wait_applied(outcome.last_position).await?;
        let count = outcome.last_position + 1 - outcome.first_position;
        let events = self
            .log
            .read_all(
                outcome.first_position,
                usize::try_from(count).unwrap_or(usize::MAX),
            )
            .await
            .map_err(|err| ApiError::internal("reading an append back", err))?;
        Ok(Executed {
            events,
            deduplicated: outcome.deduplicated,
        })
    }

    /// Waits until the read models hold `stream` at `version` at least: after
    /// losing a race for it, the winner's append is decided against.
    async fn wait_stream(&self, stream: StreamId, version: u64) -> ApiResult<()> {
        let models = self.models.clone();
        let mut applied = self.applied.clone();
        let reached = applied.wait_for(|_| {
            models
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .state()
                .stream_version(stream)
                >= version
        });
        match tokio::time::timeout(STREAM_WAIT, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::broken(
                "waiting for projections",
                "the projector stopped",
            )),
            // Decided again regardless: the next append says if still stale.
            Err(_) => Ok(()),
        }
    }
}

/// The streams a decision's append must find as the decision saw them: the
/// command's own stream and every stream its events touch, each at the
/// version `state` has (the state the events were decided against).
fn expectations(
    state: &State,
    command: &Command,
    events: &[Event],
) -> Vec<(StreamId, ExpectedVersion)> {
    let mut expected = vec![(
        command.stream(),
        ExpectedVersion::Exact(state.stream_version(command.stream())),
    )];
    for stream in events.iter().map(Event::stream) {
        if !expected.iter().any(|(s, _)| *s == stream) {
            expected.push((stream, ExpectedVersion::Exact(state.stream_version(stream))));
        }
    }
    expected
}

fn stripe(company: CompanyId) -> usize {
    let bytes = company.as_bytes();
    // The low bytes of a UUIDv7 are random.
    usize::from(bytes[15]) % COMPANY_STRIPES
}
