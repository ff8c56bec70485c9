//! The `backchannel` binary: parses the command line, sets up logging, and
//! hands over to the library.

/// glibc's allocator slows down and holds on to freed memory once the read
/// models and sled's pages make the heap large and fragmented (BENCHMARKS.md,
/// server section); mimalloc keeps both in check.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    backchannel_api::entry::main()
}
