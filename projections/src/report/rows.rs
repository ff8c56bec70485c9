//! The report's rows: its columns, one row built from a message, CSV cells
//! neutralised against formula injection, and writing rows as CSV or JSON.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use backchannel_domain::State;
use backchannel_domain::events::{Event, MessageAuthor};
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::model::Channel;
use backchannel_eventlog::RecordedEvent;
use serde::Serialize;

use crate::time::{TimeRangeError, format_rfc3339};

use super::{Header, ReportError, ReportFormat, ReportRequest};

/// The report's columns, in order: the fields of [`Row`].
pub const COLUMNS: [&str; 17] = [
    "conversation_id",
    "company_id",
    "group_id",
    "group_name",
    "channel",
    "customer",
    "opened_at",
    "closed_at",
    "assignee_id",
    "assignee_name",
    "position",
    "time",
    "author_kind",
    "author_id",
    "author_name",
    "visibility",
    "body",
];

/// One row, for CSV and JSON alike (the field order is [`COLUMNS`]).
#[derive(Serialize)]
pub(super) struct Row<'a> {
    pub(super) conversation_id: String,
    pub(super) company_id: String,
    pub(super) group_id: String,
    pub(super) group_name: &'a str,
    pub(super) channel: &'static str,
    pub(super) customer: &'a str,
    pub(super) opened_at: String,
    pub(super) closed_at: String,
    pub(super) assignee_id: Option<String>,
    pub(super) assignee_name: Option<&'a str>,
    pub(super) position: u64,
    pub(super) time: String,
    pub(super) author_kind: &'static str,
    pub(super) author_id: Option<String>,
    pub(super) author_name: &'a str,
    pub(super) visibility: &'static str,
    pub(super) body: &'a str,
}

pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Chat => "CHAT",
        Channel::Social => "SOCIAL",
        Channel::Email => "EMAIL",
        Channel::Call => "CALL",
    }
}

pub(super) fn row_of<'a>(
    directory: &'a State,
    headers: &'a HashMap<ConversationId, Header>,
    recorded: &'a RecordedEvent,
) -> Result<Option<Row<'a>>, TimeRangeError> {
    let (conversation, author, visibility, body) = match &recorded.event {
        Event::MessagePosted(e) => (e.conversation, e.author, "PUBLIC", e.body.text()),
        Event::PrivateMessagePosted(e) => (
            e.conversation,
            MessageAuthor::Staff(e.author),
            "PRIVATE",
            e.body.text(),
        ),
        _ => return Ok(None),
    };
    let Some(header) = headers.get(&conversation) else {
        return Ok(None);
    };
    let staff_name = |id: StaffId| directory.staff.get(&id).map_or("", |s| s.name.as_str());
    let (author_kind, author_id, author_name) = match author {
        MessageAuthor::Staff(id) => ("STAFF", Some(id.to_string()), staff_name(id)),
        MessageAuthor::Customer => ("CUSTOMER", None, header.customer.text()),
    };
    Ok(Some(Row {
        conversation_id: conversation.to_string(),
        company_id: header.company.to_string(),
        group_id: header.group.to_string(),
        group_name: directory
            .groups
            .get(&header.group)
            .map_or("", |g| g.name.as_str()),
        channel: channel_name(header.channel),
        customer: header.customer.text(),
        opened_at: format_rfc3339(header.opened_at)?,
        closed_at: format_rfc3339(header.closed_at)?,
        assignee_id: header.assignee.map(|a| a.to_string()),
        assignee_name: header.assignee.map(staff_name),
        position: recorded.envelope.position,
        time: format_rfc3339(recorded.envelope.recorded_at)?,
        author_kind,
        author_id,
        author_name,
        visibility,
        body,
    }))
}

/// A CSV cell a spreadsheet would run as a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'`, OWASP's advice
/// against formula injection: spreadsheets show the text as it was, and the
/// quote tells a program reading the file that the cell was neutralised.
/// Other cells are written as they are. The JSON report is not changed.
pub fn neutralise(cell: &str) -> Cow<'_, [u8]> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => {
            let mut quoted = Vec::with_capacity(cell.len() + 1);
            quoted.push(b'\'');
            quoted.extend_from_slice(cell.as_bytes());
            Cow::Owned(quoted)
        }
        _ => Cow::Borrowed(cell.as_bytes()),
    }
}

pub(super) enum RowWriter<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> RowWriter<W> {
    pub(super) fn new(mut out: W, request: &ReportRequest, head: u64) -> Result<Self, ReportError> {
        match request.format {
            ReportFormat::Csv => {
                // The header is written by hand so an empty report still has it.
                let mut writer = csv::WriterBuilder::new()
                    .has_headers(false)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(out);
                writer.write_record(COLUMNS)?;
                Ok(RowWriter::Csv(Box::new(writer)))
            }
            ReportFormat::Json => {
                let text = |s: String| serde_json::Value::String(s).to_string();
                let group = request
                    .group
                    .map_or_else(|| "null".to_owned(), |g| text(g.to_string()));
                write!(
                    out,
                    "{{\"report\":\"closed-enquiries\",\"from\":{},\"to\":{},\"group\":{group},\"head_position\":{head},\"rows\":[",
                    text(format_rfc3339(request.from)?),
                    text(format_rfc3339(request.to)?),
                )?;
                Ok(RowWriter::Json { out, first: true })
            }
        }
    }

    pub(super) fn write(&mut self, row: &Row<'_>) -> Result<(), ReportError> {
        match self {
            RowWriter::Csv(writer) => {
                let position = row.position.to_string();
                let fields: [&str; 17] = [
                    &row.conversation_id,
                    &row.company_id,
                    &row.group_id,
                    row.group_name,
                    row.channel,
                    row.customer,
                    &row.opened_at,
                    &row.closed_at,
                    row.assignee_id.as_deref().unwrap_or(""),
                    row.assignee_name.unwrap_or(""),
                    &position,
                    &row.time,
                    row.author_kind,
                    row.author_id.as_deref().unwrap_or(""),
                    row.author_name,
                    row.visibility,
                    row.body,
                ];
                writer.write_record(fields.map(neutralise))?;
            }
            RowWriter::Json { out, first } => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, row).map_err(std::io::Error::other)?;
                *first = false;
            }
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<(), ReportError> {
        match self {
            RowWriter::Csv(mut writer) => writer.flush()?,
            RowWriter::Json { mut out, .. } => {
                out.write_all(b"\n]}\n")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}
