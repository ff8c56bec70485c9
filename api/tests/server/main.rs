//! The server over real HTTP on port 0, with the demo company loaded, through
//! the one test harness (`backchannel-testkit`). One test binary, one module
//! per area.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admission;
mod auth;
mod binary;
mod consistency;
mod cors;
mod customer_paging;
mod erasure;
mod errors;
mod fuzz;
mod graphiql;
mod integrity;
mod introspection;
mod limits;
mod list_paging;
mod log_export;
mod mutations;
mod operations;
mod persisted_queries;
mod positions;
mod published_schema;
mod rate_limits;
mod read_audit;
mod report;
mod shutdown;
mod slow_clients;
mod staff_timeline_paging;
mod websocket;
mod ws_connection_cap;
mod ws_message_size;
