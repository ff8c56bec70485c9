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

pub mod events;
pub mod ids;
pub mod model;
pub mod samples;
pub mod values;
