//! # backchannel-projections
//!
//! Read models per audience (owner/admin, supervisor, agent, customer), fed from
//! the event log in order. Each one is a pure `apply` of a recorded event; together
//! they record the last global position applied ([`ReadModels::position`]), so a
//! server catches up from there after a restart and a rebuild from position 0
//! gives the same models.
//!
//! Every query that returns conversation data takes the viewer and answers "may
//! they see it" only through `backchannel_domain::visibility` (via
//! [`State::access`]). Indexes only choose *candidates* cheaply; the policy
//! decides.
//!
//! This crate knows nothing about sled, HTTP or GraphQL; it reads recorded
//! events, whatever log they come from.
//!
//! Layout:
//! - `models`: [`ReadModels`], every model applied together in log order,
//!   and the one call into the policy (`ReadModels::check`).
//! - [`summaries`]: what the state lacks of each conversation (its activity),
//!   the summary composed from both on read, and the indexes a page needs.
//! - `listing`: the viewer's conversation list, counts and the enquiry overview.
//! - [`checkpoint`]: the models saved at a position, so a start replays only
//!   the tail ([`checkpoint::open_with_read_models`]).
//! - [`customer`]: what a customer may ever see — a type with no private variant.
//! - [`notifications`]: stored notifications with read/unread state.
//! - [`replay`]: [`EventSource`], a log replayed from a position (a store or
//!   an exported file); [`time`]: RFC 3339 for reports and audit trails.
//! - [`report`]: the closed-enquiry report, streamed (CLI and HTTP share it).
//! - [`audit`]: the history of a conversation, a staff member or a company.
//! - [`access_log`]: the read audit, who opened which conversation's
//!   content (`ContentOpened`), by conversation and by staff member.
//! - [`access`]: the state at an instant of the log, and who could view what
//!   then, by which rule (the same policy function).

mod listing;
mod models;

pub mod access;
pub mod access_log;
pub mod audit;
pub mod checkpoint;
pub mod customer;
pub mod notifications;
pub mod replay;
pub mod report;
pub mod summaries;
pub mod time;

pub use backchannel_domain::State;
pub use customer::CustomerView;
pub use listing::{Column, ConversationFilter, Overview};
pub use models::{Applied, Denied, Page, ProjectionError, ReadModels};
pub use notifications::StoredNotification;
pub use replay::EventSource;
pub use summaries::ConversationSummary;
