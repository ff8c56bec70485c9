//! # backchannel-pgtest
//!
//! Throwaway PostgreSQL clusters for tests: [`PgCluster::start`] runs `initdb`
//! into a temporary directory, starts a server on a free loopback port (its
//! unix socket inside that directory, `fsync=on`) and waits for it; dropping
//! the cluster stops it immediately and removes the directory.
//!
//! The server binaries come from `BACKCHANNEL_PG_BIN`, else
//! `/usr/lib/postgresql/15/bin`. Without them every test using a cluster
//! fails and says what to install: a test never skips itself.
//!
//! As root (PostgreSQL refuses to run as root), the directory is handed to the
//! `postgres` user and every binary runs through `runuser -u postgres --`.
//!
//! Panics are the error reporting here: this crate only serves tests.
//!
//! Failover: [`PgCluster::start_standby`] (`pg_basebackup -R`, synchronous
//! or not), [`PgCluster::kill`] (SIGKILL of the postmaster and its
//! children), [`PgCluster::promote`], [`PgCluster::failover_url`] (a
//! multi-host URL clients follow to the promoted standby) and
//! [`PgCluster::suspend_wal_senders`] (a standby made to lag).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser `initdb` creates and tests connect as.
pub const SUPERUSER: &str = "postgres";

/// A running throwaway cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl PgCluster {
    /// Creates and starts a cluster; panics with the reason if it cannot.
    pub fn start() -> PgCluster {
        let mut cluster = PgCluster::empty();
        let data = cluster.data_dir();
        cluster.run_pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.launch("");
        cluster
    }

    /// Creates and starts a streaming standby of `primary` (`pg_basebackup
    /// -R`), and waits until it streams. With `synchronous`, the primary's
    /// `synchronous_standby_names` is set to it, so a commit on the primary
    /// returns only once the standby has flushed it.
    pub fn start_standby(primary: &PgCluster, synchronous: bool) -> PgCluster {
        let mut standby = PgCluster::empty();
        let data = standby.data_dir().display().to_string();
        let port = primary.port.to_string();
        standby.run_pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        // Our settings after the primary's copied ones (the last one wins);
        // primary_conninfo names the standby for synchronous_standby_names.
        let name = format!("standby_{}", std::process::id());
        standby.launch(&format!(
            "primary_conninfo = 'host=127.0.0.1 port={port} user={SUPERUSER} application_name={name}'\n"
        ));
        if synchronous {
            primary.psql(&format!(
                "ALTER SYSTEM SET synchronous_standby_names = '{name}'"
            ));
            primary.psql("SELECT pg_reload_conf()");
        }
        let wanted = if synchronous { "sync" } else { "async" };
        for _ in 0..600 {
            let state = primary.psql(&format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}' \
                 AND state = 'streaming'"
            ));
            if state.trim() == wanted {
                return standby;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the standby did not start streaming ({wanted}) within 60 s");
    }

    /// SIGKILLs the postmaster and every process it started (a crashed
    /// machine): nothing is flushed, sent, answered or made visible after
    /// this. The postmaster is frozen first (SIGSTOP): it forks nothing more,
    /// and its children cannot see it die. A backend that sees the
    /// postmaster die stops waiting for the synchronous standby and makes its
    /// commit visible to the other sessions still alive, which a crashed
    /// machine never does. Every child of PostgreSQL starts its own session
    /// (`setsid`), so a signal to the postmaster's process group would miss
    /// them: they are found by their parent in `/proc`, and all of them are
    /// killed with the postmaster in one `kill`.
    pub fn kill(&mut self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", pid_file.display()));
        let pid: u32 = pid
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or_else(|err| panic!("{} holds no pid: {err}", pid_file.display()));
        run_checked(Command::new("kill").args(["-STOP", &pid.to_string()]));
        let mut pids = descendants(pid);
        pids.push(pid);
        let args: Vec<String> = pids.iter().map(u32::to_string).collect();
        // Some may have exited meanwhile: ignore the status.
        let _ = Command::new("kill").arg("-KILL").args(&args).output();
        let survivors = || {
            pids.iter()
                .copied()
                .filter(|p| alive(*p))
                .collect::<Vec<_>>()
        };
        for _ in 0..500 {
            if survivors().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let left = survivors();
        assert!(left.is_empty(), "processes {left:?} survived SIGKILL");
        self.running = false;
    }

    /// Suspends (SIGSTOP) or resumes (SIGCONT) this primary's WAL senders:
    /// while suspended they send nothing more, so an asynchronous standby
    /// lags (a synchronous one holds the commits back).
    pub fn suspend_wal_senders(&self, suspend: bool) {
        let pids = self.psql("SELECT pid FROM pg_stat_replication");
        let pids: Vec<&str> = pids.split_whitespace().collect();
        assert!(!pids.is_empty(), "this cluster has no WAL sender");
        let signal = if suspend { "-STOP" } else { "-CONT" };
        run_checked(Command::new("kill").arg(signal).args(&pids));
    }

    /// Starts a stopped cluster again with its settings unchanged.
    pub fn restart(&mut self) {
        if !self.running {
            if !self.try_pg_ctl_start() {
                let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                panic!("the PostgreSQL cluster did not start again:\n{log}");
            }
            self.running = true;
        }
    }

    /// Promotes a standby to primary and waits for it.
    pub fn promote(&self) {
        let data = self.data_dir().display().to_string();
        self.run_pg("pg_ctl", &["-D", &data, "-w", "promote"]);
    }

    /// Runs one SQL statement as the superuser through `psql`; returns its
    /// unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let host = self.socket_dir().display().to_string();
        let output = self.command(
            &self.bin.join("psql"),
            &[
                "-h",
                &host,
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        );
        if !output.status.success() {
            panic!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A cluster directory without data yet.
    fn empty() -> PgCluster {
        let bin = bin_dir();
        for name in ["initdb", "pg_ctl", "postgres", "psql", "pg_basebackup"] {
            if !bin.join(name).is_file() {
                panic!(
                    "PostgreSQL 15 server binaries not found in {}: install Debian's `postgresql` \
                     package (apt-get update && apt-get install -y postgresql), or point \
                     BACKCHANNEL_PG_BIN at a directory holding initdb, pg_ctl and postgres",
                    bin.display()
                );
            }
        }
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("backchannel-pg-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temporary directory: {err}"));
        if as_postgres {
            run_checked(Command::new("chown").args([
                "-R",
                "postgres:postgres",
                &dir.path().display().to_string(),
            ]));
        }
        PgCluster {
            bin,
            dir: Some(dir),
            port: 0,
            as_postgres,
            running: false,
        }
    }

    /// Writes the settings (plus `extra`) and starts the server on a free port.
    fn launch(&mut self, extra: &str) {
        // A free port can be taken between probing and binding: try a few.
        for attempt in 0..5 {
            self.port = free_port();
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
                 fsync = on\nsynchronous_commit = on\nmax_connections = 300\n\
                 shared_buffers = 128MB\nlog_min_messages = warning\n\
                 wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n{extra}",
                self.port,
                self.socket_dir().display(),
            );
            self.write_conf(&conf);
            if self.try_pg_ctl_start() {
                self.running = true;
                return;
            }
            if attempt == 4 {
                let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                panic!("the throwaway PostgreSQL cluster did not start:\n{log}");
            }
        }
    }

    /// A connection URL for the superuser's `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/postgres?connect_timeout=10",
            self.port
        )
    }

    /// A connection URL for database `name` (see [`PgCluster::create_database`]).
    pub fn url_for(&self, name: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{name}?connect_timeout=10",
            self.port
        )
    }

    /// A URL that follows a failover from `primary` to `standby`: libpq's
    /// multi-host form with `target_session_attrs=read-write`, so a client
    /// connects to whichever of the two accepts writes (none while the
    /// primary is dead and the standby not yet promoted).
    pub fn failover_url(primary: &PgCluster, standby: &PgCluster, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{},127.0.0.1:{}/{database}?\
             target_session_attrs=read-write&connect_timeout=5",
            primary.port, standby.port
        )
    }

    /// Creates an empty database, so several tests can share one cluster;
    /// returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        self.url_for(name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            self.run_pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
            self.running = false;
        }
    }

    fn root(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            None => Path::new("/nonexistent"),
        }
    }

    fn socket_dir(&self) -> PathBuf {
        self.root().to_path_buf()
    }

    fn log_file(&self) -> PathBuf {
        self.root().join("server.log")
    }

    fn write_conf(&self, extra: &str) {
        let path = self.data_dir().join("postgresql.auto.conf");
        std::fs::write(&path, extra)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        if self.as_postgres {
            run_checked(
                Command::new("chown").args(["postgres:postgres", &path.display().to_string()]),
            );
        }
    }

    fn try_pg_ctl_start(&self) -> bool {
        let data = self.data_dir().display().to_string();
        let log = self.log_file().display().to_string();
        let output = self.command(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
        );
        output.status.success()
    }

    fn run_pg(&self, name: &str, args: &[&str]) {
        self.run_bin(&self.bin.join(name), args);
    }

    fn run_bin(&self, bin: &Path, args: &[&str]) {
        let output = self.command(bin, args);
        if !output.status.success() {
            panic!(
                "{} {:?} failed: {}\n{}",
                bin.display(),
                args,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Output {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(bin);
            command
        } else {
            Command::new(bin)
        };
        command
            .args(args)
            .current_dir(self.root())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            let _ = self.command(
                &self.bin.join("pg_ctl"),
                &["-D", &data, "-m", "immediate", "-w", "stop"],
            );
            self.running = false;
        }
        // TempDir removes the directory.
        self.dir.take();
    }
}

fn bin_dir() -> PathBuf {
    std::env::var_os("BACKCHANNEL_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN))
}

fn is_root() -> bool {
    // No libc dependency: /proc tells the real uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid,
/// pgrp, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The running children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    processes(|fields| fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid))
}

/// The running children of `pid`, their children, and so on.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = children(pid);
    let mut next = 0;
    while let Some(&parent) = found.get(next) {
        found.extend(children(parent));
        next += 1;
    }
    found
}

/// The running processes whose `/proc/<pid>/stat` fields (after the command
/// name) match.
fn processes(matches: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&process| {
            stat_fields(process).is_some_and(|fields| {
                fields.first().is_some_and(|state| state != "Z") && matches(&fields)
            })
        })
        .collect()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|err| panic!("cannot find a free loopback port: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the probe's port: {err}"))
        .port()
}

fn run_checked(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
