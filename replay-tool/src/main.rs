//! `replay-tool`: see the library's docs and `replay-tool --help`.

use std::process::ExitCode;

use backchannel_replay_tool::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match backchannel_replay_tool::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // `replay-tool ... | head` closing the pipe early is not worth a message.
            if !failure.broken_pipe {
                eprintln!("replay-tool: {failure}");
            }
            failure.exit_code()
        }
    }
}
