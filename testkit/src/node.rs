//! Real `backchannel serve` processes sharing one PostgreSQL log (SPEC
//! section 11), each with its own data directory, all with the same secret
//! ([`SECRET`], so a token minted for one is good on every node).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backchannel_api::auth::{StaffIdentity, Tokens};
use backchannel_pgtest::PgCluster;

use crate::http::Client;
use crate::server::SECRET;

/// How long a node may take to start (build its read models, seed the demo).
const START_PATIENCE: Duration = Duration::from_secs(120);

/// A throwaway PostgreSQL cluster with one database for the nodes.
pub struct SharedLog {
    pub cluster: PgCluster,
    pub url: String,
}

impl SharedLog {
    /// Fails (never skips) with pgtest's install message when PostgreSQL's
    /// binaries are missing.
    pub fn start() -> SharedLog {
        let cluster = PgCluster::start();
        let url = cluster.url();
        SharedLog { cluster, url }
    }

    /// One SQL statement against the nodes' database.
    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(sql)
    }
}

/// One `backchannel serve` child process, killed when dropped.
/// Dereferences to its [`Client`].
pub struct Node {
    pub name: &'static str,
    pub addr: SocketAddr,
    client: Client,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A node being started: its process runs, its banner is awaited by [`Starting::ready`].
pub struct Starting {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Starting {
    /// Waits for the banner `serve` prints once ready, and reads the address.
    pub fn ready(self) -> Node {
        let Starting {
            name,
            mut child,
            lines,
            dir,
        } = self;
        let deadline = std::time::Instant::now() + START_PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("GraphQL     http://") {
                        let addr = rest.split('/').next().unwrap().parse().unwrap();
                        return Node {
                            name,
                            addr,
                            client: Client::new(addr),
                            child,
                            _dir: dir,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    let stderr =
                        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                    panic!(
                        "node {name} did not start ({status:?}); it printed:\n{}\n{stderr}",
                        seen.join("\n")
                    );
                }
            }
        }
    }
}

impl Node {
    /// Starts `<binary> serve --store <url>` on a free port with its own
    /// data dir (and, with `demo`, `--demo`); `extra` adds flags. `binary`
    /// runs `backchannel_api::entry::main` (a test package names its own,
    /// through `CARGO_BIN_EXE_*`).
    pub fn spawn(
        binary: &Path,
        name: &'static str,
        url: &str,
        demo: bool,
        extra: &[&str],
    ) -> Starting {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--store", url])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--addr", "127.0.0.1:0", "--no-graphiql"])
            .args(["--rate-widget-starts", "off"])
            .args(["--rate-staff-mutations", "off"])
            .args(["--rate-customer-mutations", "off"])
            .args(["--rate-token-failures", "off"])
            .args(extra)
            .env("BACKCHANNEL_SECRET", SECRET)
            .env("BACKCHANNEL_LOG_FORMAT", "json")
            .env_remove("BACKCHANNEL_STORE")
            .env_remove("BACKCHANNEL_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        if demo {
            command.arg("--demo");
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Starting {
            name,
            child,
            lines,
            dir,
        }
    }

    /// The files of this node's read-models checkpoint (under
    /// `<data-dir>/checkpoint/`), with their bytes; empty before the first
    /// checkpoint.
    pub fn checkpoint_files(&self) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let dir = self._dir.path().join("checkpoint");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let bytes = std::fs::read(&path).ok()?;
                Some((path, bytes))
            })
            .collect()
    }

    /// A staff token any node accepts (they share the secret).
    pub fn staff_token(staff: &str) -> String {
        let tokens = Tokens::new(SECRET.as_bytes(), Duration::from_secs(3600));
        tokens
            .mint_staff(StaffIdentity {
                staff: staff.parse().unwrap(),
                company: crate::demo::COMPANY.parse().unwrap(),
            })
            .unwrap()
            .token
    }

    /// A sample of the node's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> u64 {
        let page = self.get("/metrics").await.text;
        page.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Waits (bounded, then panics) until the node has applied `position`.
    pub async fn applied(&self, position: u64) {
        for _ in 0..200 {
            if self.metric("backchannel_applied_position").await >= position {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} never applied position {position}", self.name);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::ops::Deref for Node {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}
