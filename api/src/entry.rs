//! The `backchannel` command line's entry point, in the library so that the
//! binary (`src/main.rs`, which adds the allocator) and the end-to-end tests'
//! copy of it (`tests/src/bin/`) run the same code.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::Application;
use crate::cli::{Cli, CliCommand};

/// The binary's `main`: parses the command line and runs it on a
/// multi-threaded runtime; an error is printed (with its causes) and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::logging::init(cli.log_format);
    match cli.command {
        CliCommand::Serve(args) => {
            let config = args.config();
            let graphiql = config.graphiql;
            let metrics = config.metrics;
            // Listening (health and readiness answer) before the catch-up.
            let starting = Application::start(config)
                .await
                .context("cannot start the server")?;
            let addr = starting.addr();
            let app = starting
                .catch_up()
                .await
                .context("cannot start the server")?;
            return_freed_memory();
            // Written once, errors ignored: a closed stdout must not stop a
            // server that is already serving.
            let _ = std::io::stdout().write_all(banner(&app, addr, graphiql, metrics).as_bytes());
            app.run_until_stopped().await.context("the server failed")?;
        }
        CliCommand::Init(args) => {
            let created = crate::admin::init(&args.store.config(), &args.company, &args.owner)
                .await
                .context("cannot create the company")?;
            println!("company    {}", created.company);
            println!("owner      {}", created.owner);
            println!("widget key {}", created.widget_key);
            println!("owner token\n{}", created.owner_token);
        }
        CliCommand::Token(args) => {
            let config = args.store.config();
            let token = match &args.staff {
                Some(staff) => crate::admin::token(&config, staff).await,
                None => crate::admin::operator_token(&config),
            }
            .context("cannot mint the token")?;
            println!("{token}");
        }
    }
    Ok(())
}

/// mimalloc gives freed memory back to the system (purges it) only once its
/// purge delay (1 s by default) has passed, and only when a thread frees a
/// page or ends after that: a server idle after its catch-up does neither,
/// so the pass's freed memory stayed resident until requests came
/// (BENCHMARKS.md, server section). This thread ends after the delay, and
/// its end purges what has expired.
fn return_freed_memory() {
    const AFTER_PURGE_DELAY: std::time::Duration = std::time::Duration::from_millis(1100);
    let _ = std::thread::Builder::new()
        .name("purge".to_owned())
        .spawn(|| {
            std::thread::sleep(AFTER_PURGE_DELAY);
            // An allocation gives the thread an allocator heap, which its end
            // collects.
            drop(std::hint::black_box(Vec::<u8>::with_capacity(64)));
        });
}

/// What `serve` prints once ready: the demo's tokens and groups, and where
/// GraphiQL, the endpoints, health and metrics are.
fn banner(app: &Application, addr: SocketAddr, graphiql: bool, metrics: bool) -> String {
    let mut out = String::new();
    if let Some(demo) = app.demo() {
        let _ = writeln!(
            out,
            "Demo company {} (widget key {})",
            demo.company, demo.widget_key
        );
        for (role, name, id, token) in &demo.staff {
            let _ = writeln!(out, "  {role:<11} {name} ({id})\n    {token}");
        }
        let _ = writeln!(
            out,
            "  customer    conversation {}\n    {}",
            demo.customer_conversation, demo.customer
        );
        let _ = writeln!(out, "  groups (startConversation's groupId)");
        for (id, name, routing) in &demo.groups {
            let _ = writeln!(out, "    {id}  {name} ({routing:?})");
        }
    }
    if graphiql {
        let _ = writeln!(
            out,
            "GraphiQL    http://{addr}/  (customer: http://{addr}/customer)"
        );
    }
    let _ = writeln!(
        out,
        "GraphQL     http://{addr}/graphql  (customer: http://{addr}/customer/graphql; websockets on the same paths)"
    );
    if metrics {
        let _ = writeln!(out, "Metrics     http://{addr}/metrics");
    }
    let _ = writeln!(
        out,
        "Health      http://{addr}/healthz  http://{addr}/readyz"
    );
    out
}
