//! # backchannel-api
//!
//! The server: axum + async-graphql, the staff schema at `/graphql`, the customer
//! schema at `/customer/graphql`, reports, health and readiness, and the
//! `backchannel` binary. The only crate that knows HTTP and GraphQL.
//!
//! Status: arrives with the issue "Per-audience projections and the GraphQL API
//! server". Nothing here is implemented yet.
