//! `access`: who could view what at an instant, and by which rule — the
//! state replayed up to the instant, asked through `State::access`.

use std::io::{self, BufWriter, Write};

use backchannel_domain::visibility::Access;
use backchannel_projections::access::{
    AccessError, Instant, StateAt, state_at, viewable_by, who_can_view,
};
use backchannel_projections::report::channel_name;
use backchannel_projections::time::format_rfc3339;
use serde::Serialize;

use crate::cli::{AccessArgs, LineFormat};
use crate::commands::{open_reading_source, parse_id, parse_time, source_failure};
use crate::failure::{Failure, Kind, output};
use crate::progress::Progress;
use crate::source::Tracked;

#[derive(Serialize)]
struct StaffLine<'a> {
    staff_id: String,
    name: &'a str,
    role: String,
    active: bool,
    access: &'static str,
    rule: Option<String>,
    reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ConversationLine<'a> {
    conversation_id: String,
    group_id: String,
    group_name: &'a str,
    channel: &'static str,
    status: &'static str,
    private: bool,
    effectively_private: bool,
    rule: String,
    reason: &'static str,
}

pub fn run(args: &AccessArgs, quiet: bool) -> Result<(), Failure> {
    let instant = match (&args.at, args.at_position) {
        (Some(at), _) => Instant::Time(parse_time("at", at)?),
        (None, Some(position)) => Instant::Position(position),
        (None, None) => Instant::Position(u64::MAX),
    };
    let conversation = args
        .conversation
        .as_deref()
        .map(|id| parse_id("conversation", id))
        .transpose()?;
    let staff = args
        .staff
        .as_deref()
        .map(|id| parse_id("staff", id))
        .transpose()?;
    let source = open_reading_source(&args.source, &args.keys, quiet)?;
    let progress = Progress::new("replaying", quiet);
    let tracked = Tracked {
        source: &source,
        progress: &progress,
    };
    let at = state_at(&tracked, instant).map_err(source_failure)?;
    progress.finish();
    let mut out = BufWriter::new(io::stdout().lock());
    let not_found = |err: AccessError| Failure::new(Kind::NotFound, err.to_string());
    let text = matches!(args.format, LineFormat::Text);
    if text {
        writeln!(out, "{}", instant_line(&at)).map_err(output)?;
    }
    if let Some(conversation) = conversation {
        let all = who_can_view(&at.state, conversation).map_err(not_found)?;
        for entry in &all {
            let (access, rule) = match entry.access {
                Access::Granted(rule) => ("granted", Some(rule)),
                Access::Restricted | Access::NotFound => ("no access", None),
            };
            let line = StaffLine {
                staff_id: entry.staff.to_string(),
                name: &entry.name,
                role: entry.role.to_string(),
                active: entry.active,
                access,
                rule: rule.map(|r| r.to_string()),
                reason: rule.map(|r| r.description()),
            };
            if text {
                let status = if entry.active { "" } else { ", deactivated" };
                let verdict = match rule {
                    Some(rule) => format!("{rule} ({})", rule.description()),
                    None => "no access".to_owned(),
                };
                writeln!(
                    out,
                    "{} {:?} ({}{status}): {verdict}",
                    line.staff_id, line.name, line.role
                )
            } else {
                writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default())
            }
            .map_err(output)?;
        }
    }
    if let Some(staff) = staff {
        let all = viewable_by(&at.state, staff).map_err(not_found)?;
        for (id, rule) in &all {
            let Some(conversation) = at.state.conversations.get(id) else {
                continue;
            };
            let group_name = at
                .state
                .groups
                .get(&conversation.group)
                .map_or("", |g| g.name.as_str());
            let line = ConversationLine {
                conversation_id: id.to_string(),
                group_id: conversation.group.to_string(),
                group_name,
                channel: channel_name(conversation.channel),
                status: match conversation.status {
                    backchannel_domain::model::ConversationStatus::Queued => "QUEUED",
                    backchannel_domain::model::ConversationStatus::Handling => "HANDLING",
                    backchannel_domain::model::ConversationStatus::Closed => "CLOSED",
                },
                private: conversation.private,
                effectively_private: at.state.is_effectively_private(conversation),
                rule: rule.to_string(),
                reason: rule.description(),
            };
            if text {
                let privacy = if line.effectively_private {
                    "private"
                } else {
                    "public"
                };
                writeln!(
                    out,
                    "{} {:?} {} {} {privacy}: {} ({})",
                    line.conversation_id,
                    line.group_name,
                    line.channel,
                    line.status,
                    line.rule,
                    line.reason
                )
            } else {
                writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default())
            }
            .map_err(output)?;
        }
        if text {
            writeln!(out, "{} conversations viewable", all.len()).map_err(output)?;
        }
    }
    out.flush().map_err(output)
}

fn instant_line(at: &StateAt) -> String {
    match at.recorded_at {
        Some(time) => match format_rfc3339(time) {
            Ok(time) => format!("as of position {} (recorded {time})", at.position),
            Err(err) => format!("as of position {} ({err})", at.position),
        },
        None => "as of position 0 (before the first event)".to_owned(),
    }
}
