//! What the e2e tests add to the one harness (`backchannel-testkit`, whose
//! server, clients and nodes are re-exported here): companies built through
//! GraphQL, the queries the tests share, and this package's node binary.

pub mod company;

pub use backchannel_testkit::*;
pub use company::*;

/// Starts a `backchannel serve` child process on `url` (see [`Node::spawn`]):
/// this package's `backchannel-e2e-node` binary.
pub fn node(name: &'static str, url: &str, demo: bool, extra: &[&str]) -> Starting {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_backchannel-e2e-node"));
    Node::spawn(binary, name, url, demo, extra)
}
