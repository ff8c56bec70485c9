//! The real server, a websocket client, and companies built through GraphQL.

pub mod company;
pub mod node;
pub mod server;
pub mod ws;

pub use company::*;
pub use server::{Reply, TestServer};
pub use ws::{Frame, Subscription};
