//! The `backchannel` binary: parses the command line, sets up logging, and
//! hands over to the library.

use anyhow::Context;
use backchannel_api::Application;
use backchannel_api::cli::{Cli, CliCommand};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// glibc's allocator slows down and holds on to freed memory once the read
/// models and sled's pages make the heap large and fragmented (BENCHMARKS.md,
/// server section); mimalloc keeps both in check.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BACKCHANNEL_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        CliCommand::Serve(args) => {
            let app = Application::build(args.config())
                .await
                .context("cannot start the server")?;
            if let Some(demo) = app.demo() {
                println!(
                    "Demo company {} (widget key {})",
                    demo.company, demo.widget_key
                );
                for (role, name, id, token) in &demo.staff {
                    println!("  {role:<11} {name} ({id})\n    {token}");
                }
                println!(
                    "  customer    conversation {}\n    {}",
                    demo.customer_conversation, demo.customer
                );
            }
            println!("GraphQL on http://{}/graphql", app.addr());
            app.run_until_stopped().await.context("the server failed")?;
        }
        CliCommand::Init(args) => {
            let created =
                backchannel_api::admin::init(&args.store.config(), &args.company, &args.owner)
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
                Some(staff) => backchannel_api::admin::token(&config, staff).await,
                None => backchannel_api::admin::operator_token(&config),
            }
            .context("cannot mint the token")?;
            println!("{token}");
        }
    }
    Ok(())
}
