//! # backchannel-domain
//!
//! The pure core of Backchannel: the glossary's types, the event catalogue, the
//! decisions that turn a command into events, and the one visibility policy
//! (SPEC section 3) that every read path must call.
//!
//! This crate owns the business rules and nothing else. It must never know about
//! sled, tokio, axum, GraphQL, files or the clock: every input arrives as an
//! argument, and nothing here can fail on IO.
//!
//! Layout:
//! - [`ids`], [`values`], [`model`]: the glossary (ids, parsed values, enums).
//! - [`events`]: the event catalogue; [`samples`]: one fixed sample of each.
//! - [`commands`]: what clients ask for; [`decide`](mod@decide): the business
//!   rules that turn a command into events or a [`DomainError`] (SPEC sections
//!   2, 4, 5 and 7), one function per command.
//! - [`state`]: the current state folded from events.
//! - [`visibility`]: the policy R1–R6 (SPEC section 3), one function for every path.
//! - [`permissions`]: the other read-side permissions (the enquiry overview,
//!   audit trails, the log export) and the signed-in staff check, one function
//!   each, called by the api and projections.
//! - [`notify`]: who is notified of an event (SPEC section 5).
//! - [`error`]: refusals and their SPEC error codes.

pub mod commands;
pub mod decide;
pub mod error;
pub mod events;
pub mod ids;
pub mod model;
pub mod notify;
pub mod permissions;
pub mod samples;
pub mod state;
pub mod values;
pub mod visibility;

pub use commands::Command;
pub use decide::{decide, may_issue_staff_token};
pub use error::{DomainError, ErrorCode};
pub use events::{Event, EventType, StreamId};
pub use model::Actor;
pub use state::State;
pub use visibility::{Access, Rule};
