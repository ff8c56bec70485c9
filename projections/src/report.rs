//! The closed-enquiry chat-history report (SPEC sections 4, 8 and 9): every
//! message, public and private (marked), of the conversations closed in a time
//! range, for those allowed to read closed enquiries. The replay tool's
//! `report` and the server's `GET /reports/enquiries` both call
//! [`write_report`], so they produce the same bytes for the same log, request
//! and viewer.
//!
//! # What is in it
//!
//! A conversation is in the report when it is `CLOSED` at the end of the log
//! (the head read when the report starts) and its *last* close happened in
//! `[from, to)`. A conversation closed in range and reopened since is not in
//! it (it is not a closed enquiry any more). Permissions are those of the
//! viewer at the head: owner and admins all groups of their company,
//! supervisors and `ENQUIRY_HISTORY` holders their groups
//! (`domain::visibility::may_read_enquiry_history`, one call per group); a
//! viewer allowed no group at all, or asking for a group they may not read,
//! is refused before a byte is written. Without a viewer (an auditor with the
//! log file) every company is included, or the one asked for.
//!
//! One row per message, in log order (sort by `conversation_id`, `position` to
//! group them); closed conversations without any message have no row. Names
//! (group, staff) are the ones at the head.
//!
//! # Columns (CSV header, JSON field names)
//!
//! `conversation_id, company_id, group_id, group_name, channel, customer,
//! opened_at, closed_at, assignee_id, assignee_name, position, time,
//! author_kind, author_id, author_name, visibility, body`
//!
//! - `channel`: `CHAT`, `SOCIAL`, `EMAIL`, `CALL`;
//! - `assignee_*`: the assignee when the conversation was closed (empty if
//!   it was closed from the queue);
//! - `position`: the message's global position in the log;
//! - `author_kind`: `STAFF` or `CUSTOMER` (the customer's id is empty, their
//!   name is the conversation's customer name);
//! - `visibility`: `PUBLIC` or `PRIVATE` (staff only, never shown to customers);
//! - times: RFC 3339, UTC, microseconds (`2025-03-01T09:30:00.000000Z`).
//!
//! CSV: RFC 4180 through the `csv` crate, a header row, `\n` line ends, empty
//! fields for absent values; a cell starting with `=`, `+`, `-`, `@`, a tab or
//! a carriage return (which a spreadsheet would run as a formula) is written
//! with a leading `'` ([`neutralise`]). JSON: one object
//! `{"report":"closed-enquiries","from":…,"to":…,"group":…,"head_position":…,"rows":[…]}`
//! whose rows have the CSV's fields (absent values `null`), one row per line.
//!
//! # Memory
//!
//! Three passes over the log, none holding messages: (1) the directory
//! (companies, staff, groups — company streams only) and the ids of
//! conversations whose last close is in range; (2) those conversations' header
//! (group, channel, customer, opening time, assignee), dropping the ones the
//! viewer may not read or the group filter excludes; (3) the rows, written as
//! the messages go by. Memory is O(directory + closed conversations in range),
//! flat in the number of messages and of other conversations.
//!
//! Decision record: `docs/decisions/report-inclusion.md`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::ops::ControlFlow;

use backchannel_domain::State;
use backchannel_domain::events::{Event, StreamId};
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use backchannel_domain::model::Channel;
use backchannel_domain::values::{Content, Name};
use backchannel_domain::visibility::{Rule, enquiry_history_rule, may_read_enquiry_history};
use backchannel_eventlog::RecordedAt;

use crate::replay::EventSource;
use crate::time::TimeRangeError;

mod rows;

pub use rows::{COLUMNS, channel_name, neutralise};
use rows::{RowWriter, row_of};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Json,
}

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// Close times from `from` (included) ...
    pub from: RecordedAt,
    /// ... to `to` (excluded).
    pub to: RecordedAt,
    pub group: Option<GroupId>,
    /// Only this company (a viewer's report is always their own company's).
    pub company: Option<CompanyId>,
    /// Whose permissions apply; `None`: no restriction (the auditor's tool).
    pub viewer: Option<StaffId>,
    pub format: ReportFormat,
}

/// What a report held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportSummary {
    /// The log's head the report was computed at.
    pub head: u64,
    pub conversations: u64,
    pub rows: u64,
    pub private_rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the time range is empty: `from` must be before `to`")]
    EmptyRange,
    /// The viewer is unknown (the same answer as another company's staff).
    #[error("staff {0} not found")]
    UnknownViewer(StaffId),
    #[error("group {0} not found")]
    UnknownGroup(GroupId),
    #[error("company {0} not found")]
    UnknownCompany(CompanyId),
    /// SPEC section 4: the viewer may not read these closed enquiries.
    #[error("{0}")]
    Forbidden(String),
    #[error("reading the log failed: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error("writing the report failed: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Time(#[from] TimeRangeError),
}

impl ReportError {
    fn source<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        ReportError::Source(Box::new(err))
    }
}

impl From<csv::Error> for ReportError {
    fn from(err: csv::Error) -> Self {
        ReportError::Output(std::io::Error::other(err))
    }
}

/// A closed conversation's header, as rows repeat it.
struct Header {
    company: CompanyId,
    group: GroupId,
    channel: Channel,
    customer: Content<Name>,
    opened_at: RecordedAt,
    closed_at: RecordedAt,
    assignee: Option<StaffId>,
}
/// What each of [`write_report`]'s passes over the log reads it for, in
/// order (for progress bars).
pub const REPORT_PASSES: [&str; 3] = [
    "the directory and the enquiries closed in range",
    "those conversations' headers",
    "the messages",
];

/// Writes the report for `request` over `source` to `out`; see the module docs.
/// Refusals (`Forbidden`, unknown ids, an empty range) come before any output.
pub fn write_report<S: EventSource, W: Write>(
    source: &S,
    request: &ReportRequest,
    out: W,
) -> Result<ReportSummary, ReportError> {
    write_report_opening(source, request, out, &mut |_| {})
}

/// A conversation a viewer's report included, and the rule that let them
/// read it (`domain::visibility::enquiry_history_rule`): the read audit's
/// record of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Included {
    pub company: CompanyId,
    pub conversation: ConversationId,
    pub viewer: StaffId,
    pub rule: Rule,
}

/// [`write_report`], handing `included` each conversation the report held,
/// once it is written whole (only for a request with a viewer).
pub fn write_report_opening<S: EventSource, W: Write>(
    source: &S,
    request: &ReportRequest,
    out: W,
    included: &mut dyn FnMut(Included),
) -> Result<ReportSummary, ReportError> {
    if request.from >= request.to {
        return Err(ReportError::EmptyRange);
    }
    let head = source.head();

    // Pass 1: the directory and the conversations whose last close is in range.
    let mut directory = State::default();
    let mut closed: HashMap<ConversationId, RecordedAt> = HashMap::new();
    source
        .replay(1, head, &mut |recorded| {
            let at = recorded.envelope.recorded_at;
            match &recorded.event {
                event if matches!(event.stream(), StreamId::Company(_)) => directory.apply(event),
                Event::ConversationClosed(e) if at >= request.from && at < request.to => {
                    closed.insert(e.conversation, at);
                }
                Event::ConversationClosed(e) => {
                    closed.remove(&e.conversation);
                }
                Event::ConversationReopened(e) => {
                    closed.remove(&e.conversation);
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .map_err(ReportError::source)?;
    let allowed = allowed_groups(&directory, request)?;

    // Pass 2: the headers of the conversations the viewer may read.
    let mut headers: HashMap<ConversationId, Header> = HashMap::with_capacity(closed.len());
    source
        .replay(1, head, &mut |recorded| {
            match &recorded.event {
                Event::ConversationOpened(e) => {
                    if let Some(&closed_at) = closed.get(&e.conversation)
                        && allowed.contains(&e.group)
                    {
                        headers.insert(
                            e.conversation,
                            Header {
                                company: e.company,
                                group: e.group,
                                channel: e.channel,
                                customer: e.customer.clone(),
                                opened_at: recorded.envelope.recorded_at,
                                closed_at,
                                assignee: None,
                            },
                        );
                    }
                }
                Event::ConversationAssigned(e) => {
                    if let Some(header) = headers.get_mut(&e.conversation) {
                        header.assignee = Some(e.assignee);
                    }
                }
                Event::ConversationReopened(e) => {
                    if let Some(header) = headers.get_mut(&e.conversation) {
                        header.assignee = e.assignee;
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .map_err(ReportError::source)?;
    drop(closed);

    // Pass 3: the rows.
    let mut writer = RowWriter::new(out, request, head)?;
    // Each included conversation is recorded as opened before its first
    // row goes out, so a reader who drops the download part way is on
    // record too.
    if let Some(staff) = request.viewer.and_then(|v| directory.staff.get(&v)) {
        for (&conversation, header) in &headers {
            let rule = directory
                .groups
                .get(&header.group)
                .and_then(|g| enquiry_history_rule(staff, g));
            if let Some(rule) = rule {
                included(Included {
                    company: header.company,
                    conversation,
                    viewer: staff.id,
                    rule,
                });
            }
        }
    }
    let mut summary = ReportSummary {
        head,
        conversations: headers.len() as u64,
        ..ReportSummary::default()
    };
    let mut failure: Option<ReportError> = None;
    source
        .replay(1, head, &mut |recorded| {
            let row = match row_of(&directory, &headers, recorded) {
                Ok(Some(row)) => row,
                Ok(None) => return ControlFlow::Continue(()),
                Err(err) => {
                    failure = Some(err.into());
                    return ControlFlow::Break(());
                }
            };
            if let Err(err) = writer.write(&row) {
                failure = Some(err);
                return ControlFlow::Break(());
            }
            summary.rows += 1;
            if row.visibility == "PRIVATE" {
                summary.private_rows += 1;
            }
            ControlFlow::Continue(())
        })
        .map_err(ReportError::source)?;
    if let Some(err) = failure {
        return Err(err);
    }
    writer.finish()?;
    Ok(summary)
}

/// The groups whose closed enquiries the report may include.
fn allowed_groups(
    directory: &State,
    request: &ReportRequest,
) -> Result<HashSet<GroupId>, ReportError> {
    let company = match request.viewer {
        Some(viewer) => {
            let staff = directory
                .staff
                .get(&viewer)
                .ok_or(ReportError::UnknownViewer(viewer))?;
            if request.company.is_some_and(|c| c != staff.company) {
                return Err(ReportError::UnknownCompany(
                    request.company.unwrap_or(staff.company),
                ));
            }
            Some(staff.company)
        }
        None => request.company,
    };
    if let Some(company) = company
        && !directory.companies.contains_key(&company)
    {
        return Err(ReportError::UnknownCompany(company));
    }
    let in_scope = |group: &&backchannel_domain::state::Group| {
        company.is_none_or(|c| group.company == c) && request.group.is_none_or(|g| group.id == g)
    };
    let candidates: Vec<_> = directory.groups.values().filter(in_scope).collect();
    if let Some(group) = request.group
        && candidates.is_empty()
    {
        return Err(ReportError::UnknownGroup(group));
    }
    let Some(viewer) = request.viewer else {
        return Ok(candidates.iter().map(|g| g.id).collect());
    };
    let Some(staff) = directory.staff.get(&viewer) else {
        return Err(ReportError::UnknownViewer(viewer));
    };
    let allowed: HashSet<GroupId> = candidates
        .iter()
        .filter(|g| may_read_enquiry_history(staff, g))
        .map(|g| g.id)
        .collect();
    if allowed.is_empty() {
        return Err(ReportError::Forbidden(match request.group {
            Some(group) => format!(
                "staff {viewer} may not read the closed enquiries of group {group} \
                 (owner, admin, its supervisors and its ENQUIRY_HISTORY holders may)"
            ),
            None if !staff.active => format!("staff {viewer} is deactivated"),
            None => format!(
                "staff {viewer} may not read closed enquiries: only the owner, admins, \
                 supervisors and ENQUIRY_HISTORY holders of a group may"
            ),
        }));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests;
