//! The `backchannel` command line, built inside this package so its tests
//! can start real server processes (`env!("CARGO_BIN_EXE_backchannel-e2e-node")`):
//! the same entry point as the `backchannel` binary, `backchannel_api::entry`.

fn main() -> std::process::ExitCode {
    backchannel_api::entry::main()
}
