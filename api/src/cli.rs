//! The `backchannel` command line: `serve`, `init` and `token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use backchannel_domain::values::WebOrigin;
use backchannel_eventlog::StoreSpec;

use crate::config::{Config, Limits};
use crate::ratelimit::{Rate, RateLimits};

#[derive(Debug, Parser)]
#[command(
    name = "backchannel",
    version,
    about = "The Backchannel support desk server"
)]
pub(crate) struct Cli {
    /// Log format: `text` (human-readable; colours only on a terminal) or
    /// `json` (one JSON object per line).
    #[arg(
        long,
        global = true,
        env = "BACKCHANNEL_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CliCommand {
    /// Serve the GraphQL API (staff at /graphql, customers at /customer/graphql).
    Serve(Box<ServeArgs>),
    /// Create a company with its owner; prints the owner's token and the widget key.
    Init(InitArgs),
    /// Mint a token for a staff member (on sled the server must be stopped: one
    /// process owns the store; not on PostgreSQL), or with --operator a server operator's token for
    /// `GET /log` (only the secret is read: the server may be running).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Where the event store (unless --store names another), the token
    /// secret and, on a shared log, this node's checkpoint live.
    #[arg(long, env = "BACKCHANNEL_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The event log: a sled store directory, or a PostgreSQL URL
    /// (`postgres://user@host/db`) that several nodes share. Default: the
    /// sled store in <data-dir>/store. Nodes sharing a log must share the
    /// secret too (--secret, or a copy of <data-dir>/secret).
    #[arg(long, env = "BACKCHANNEL_STORE", hide_env_values = true, value_parser = parse_store)]
    pub store: Option<StoreSpec>,
    /// Token signing secret (at least 32 bytes). Default: generated once into <data-dir>/secret.
    #[arg(long, env = "BACKCHANNEL_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Lifetime of minted tokens, in days.
    #[arg(long, env = "BACKCHANNEL_TOKEN_DAYS", default_value_t = 30)]
    pub token_days: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "BACKCHANNEL_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Do not serve GraphiQL at / and /customer.
    #[arg(long, env = "BACKCHANNEL_NO_GRAPHIQL", value_parser = BoolishValueParser::new())]
    pub no_graphiql: bool,
    /// Do not serve `GET /metrics` (Prometheus text format, no token needed).
    #[arg(long, env = "BACKCHANNEL_NO_METRICS", value_parser = BoolishValueParser::new())]
    pub no_metrics: bool,
    /// Do not record who opens conversation content (the read audit, SPEC
    /// section 12). For measuring its cost; a deployment keeps it on.
    #[arg(long, env = "BACKCHANNEL_NO_READ_AUDIT", value_parser = BoolishValueParser::new())]
    pub no_read_audit: bool,
    /// Refuse introspection queries.
    #[arg(long, env = "BACKCHANNEL_NO_INTROSPECTION", value_parser = BoolishValueParser::new())]
    pub no_introspection: bool,
    /// Largest request body in bytes.
    #[arg(long, env = "BACKCHANNEL_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Deepest query.
    #[arg(long, env = "BACKCHANNEL_MAX_DEPTH", default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,
    /// Highest query complexity.
    #[arg(long, env = "BACKCHANNEL_MAX_COMPLEXITY", default_value_t = Limits::default().max_complexity)]
    pub max_complexity: usize,
    /// Largest page size (`first`); at most 100.
    #[arg(long, env = "BACKCHANNEL_MAX_PAGE_SIZE", default_value_t = Limits::default().max_page_size,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub max_page_size: usize,
    /// Deepest nesting of brackets in a query and of its variables, checked
    /// before parsing; at most 128 (deeper would let the recursive parser and
    /// validator near the end of a worker's stack).
    #[arg(long, env = "BACKCHANNEL_MAX_NESTING", default_value_t = Limits::default().max_nesting,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=128))]
    pub max_nesting: usize,
    /// Most fragment definitions in one query.
    #[arg(long, env = "BACKCHANNEL_MAX_FRAGMENTS", default_value_t = Limits::default().max_fragments)]
    pub max_fragments: usize,
    /// Most fragment spreads in one query.
    #[arg(long, env = "BACKCHANNEL_MAX_FRAGMENT_SPREADS", default_value_t = Limits::default().max_fragment_spreads)]
    pub max_fragment_spreads: usize,
    /// Largest query in bytes once its fragments are spread.
    #[arg(long, env = "BACKCHANNEL_MAX_FRAGMENT_EXPANSION", default_value_t = Limits::default().max_fragment_expansion)]
    pub max_fragment_expansion: usize,
    /// Execution deadline of one request, in milliseconds.
    #[arg(long, env = "BACKCHANNEL_DEADLINE_MS", default_value_t = Limits::default().deadline.as_millis() as u64)]
    pub deadline_ms: u64,
    /// Rate of `startConversation` per widget key and client address:
    /// `<n>/<s|m|h>[:<burst>]`, or `off`.
    #[arg(long, env = "BACKCHANNEL_RATE_WIDGET_STARTS", default_value_t = RateLimits::default().widget_starts)]
    pub rate_widget_starts: Rate,
    /// Rate of mutations per staff member.
    #[arg(long, env = "BACKCHANNEL_RATE_STAFF_MUTATIONS", default_value_t = RateLimits::default().staff_mutations)]
    pub rate_staff_mutations: Rate,
    /// Rate of customer mutations per conversation.
    #[arg(long, env = "BACKCHANNEL_RATE_CUSTOMER_MUTATIONS", default_value_t = RateLimits::default().customer_mutations)]
    pub rate_customer_mutations: Rate,
    /// Rate of bad or expired bearer tokens per client address.
    #[arg(long, env = "BACKCHANNEL_RATE_TOKEN_FAILURES", default_value_t = RateLimits::default().token_failures)]
    pub rate_token_failures: Rate,
    /// Browser origins the staff desk may call /graphql from (CORS), comma
    /// separated, each scheme://host[:port]. Default: none (same origin only).
    #[arg(long, env = "BACKCHANNEL_STAFF_ORIGINS", value_delimiter = ',',
          value_parser = parse_origin)]
    pub staff_origins: Vec<WebOrigin>,
    /// Reverse proxies (addresses or CIDR ranges, comma separated) whose
    /// X-Forwarded-For names the client, for the per-address rate limits.
    /// Default: none (the header is ignored; the TCP peer is the client).
    #[arg(long = "trusted-proxy", env = "BACKCHANNEL_TRUSTED_PROXIES", value_delimiter = ',',
          value_name = "CIDR", value_parser = crate::ratelimit::parse_trusted_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Load the demo company and print a token for each role.
    #[arg(long, env = "BACKCHANNEL_DEMO", value_parser = BoolishValueParser::new())]
    pub demo: bool,
    /// How long a request with `X-Min-Position` (websocket: `minPosition`)
    /// waits for this node to reach it before `NOT_CAUGHT_UP`, in milliseconds.
    #[arg(long, env = "BACKCHANNEL_MIN_POSITION_WAIT_MS", default_value_t = Limits::default().min_position_wait.as_millis() as u64,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(0..=60_000))]
    pub min_position_wait_ms: u64,
    /// `/readyz` answers 503 when this node's read models trail the log's
    /// head by more than this many events.
    #[arg(long, env = "BACKCHANNEL_READY_MAX_LAG", default_value_t = crate::config::DEFAULT_READY_MAX_LAG)]
    pub ready_max_lag: u64,
    #[command(flatten)]
    pub transport: crate::transport::TransportArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The company's name.
    #[arg(long)]
    pub company: String,
    /// The owner's name.
    #[arg(long)]
    pub owner: String,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The staff member's id.
    #[arg(
        long,
        required_unless_present = "operator",
        conflicts_with = "operator"
    )]
    pub staff: Option<String>,
    /// A server operator's token instead: it reads the whole log of every
    /// company over `GET /log` (`replay-tool --server`), and nothing else.
    #[arg(long)]
    pub operator: bool,
}

fn parse_store(input: &str) -> Result<StoreSpec, String> {
    StoreSpec::parse(input).map_err(|e| e.to_string())
}

fn parse_origin(input: &str) -> Result<WebOrigin, String> {
    WebOrigin::parse(input).map_err(|e| e.to_string())
}

impl StoreArgs {
    /// A configuration for commands that only need the store and the secret.
    pub(crate) fn config(&self) -> Config {
        let mut config = Config::new(self.data_dir.clone(), SocketAddr::from(([127, 0, 0, 1], 0)));
        config.secret = self.secret.clone();
        config.store = self.store.clone();
        config.token_lifetime = Duration::from_secs(self.token_days.saturating_mul(24 * 3600));
        config
    }
}

impl ServeArgs {
    pub(crate) fn config(&self) -> Config {
        let mut config = self.store.config();
        config.addr = self.addr;
        config.graphiql = !self.no_graphiql;
        config.introspection = !self.no_introspection;
        config.metrics = !self.no_metrics;
        config.read_audit.enabled = !self.no_read_audit;
        config.limits = Limits {
            max_body_bytes: self.max_body_bytes,
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_page_size: self.max_page_size,
            max_nesting: self.max_nesting,
            max_fragments: self.max_fragments,
            max_fragment_spreads: self.max_fragment_spreads,
            max_fragment_expansion: self.max_fragment_expansion,
            deadline: Duration::from_millis(self.deadline_ms),
            min_position_wait: Duration::from_millis(self.min_position_wait_ms),
        };
        config.ready_max_lag = self.ready_max_lag;
        config.rate_limits = RateLimits {
            widget_starts: self.rate_widget_starts,
            staff_mutations: self.rate_staff_mutations,
            customer_mutations: self.rate_customer_mutations,
            token_failures: self.rate_token_failures,
        };
        config.demo = self.demo;
        config.staff_origins = self.staff_origins.clone();
        config.trusted_proxies = self.trusted_proxies.clone();
        config.transport = self.transport.limits();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<Config, clap::Error> {
        let mut argv = vec!["backchannel", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            CliCommand::Serve(serve) => Ok(serve.config()),
            _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }

    #[test]
    fn the_store_is_sled_in_the_data_dir_unless_named() {
        let Ok(config) = serve(&["--data-dir", "/srv/a"]) else {
            panic!("serve did not parse");
        };
        assert_eq!(config.store(), StoreSpec::sled("/srv/a/store"));
        let Ok(config) = serve(&["--data-dir", "/srv/a", "--store", "postgres://u:pw@db/bc"])
        else {
            panic!("serve --store did not parse");
        };
        assert_eq!(
            config.store(),
            StoreSpec::Postgres("postgres://u:pw@db/bc".to_owned())
        );
        // A shared log: the node's checkpoint in its own data dir.
        assert_eq!(
            config.checkpoint_dir().0,
            std::path::PathBuf::from("/srv/a/checkpoint")
        );
        assert!(serve(&["--store", ""]).is_err());
    }

    #[test]
    fn the_min_position_wait_and_readiness_lag_are_flags() {
        let Ok(config) = serve(&["--min-position-wait-ms", "250", "--ready-max-lag", "7"]) else {
            panic!("serve did not parse");
        };
        assert_eq!(config.limits.min_position_wait, Duration::from_millis(250));
        assert_eq!(config.ready_max_lag, 7);
        assert!(serve(&["--min-position-wait-ms", "600001"]).is_err());
    }
}
