//! [`Db`]: how to reach the database, and [`Conn`], one connection to it
//! whose notices (and notifications, if asked) are forwarded.
//!
//! Every connection sets `idle_in_transaction_session_timeout` and TCP
//! keepalives, so a dead writer cannot hold the head lock. No TLS yet
//! (`NoTls`).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

use super::PgOptions;
use crate::error::{Error, OpenError, StorageError};

/// How to reach the database.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) config: Config,
    pub(crate) options: PgOptions,
    /// The target for messages, without credentials.
    pub(crate) target: String,
}

/// A connection whose notices (and notifications, if asked) are forwarded.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) notices: mpsc::UnboundedReceiver<DbError>,
}

impl Db {
    pub(super) fn new(url: &str, options: PgOptions) -> Result<Db, StorageError> {
        Db::with_config(url.parse().map_err(StorageError::new)?, options)
    }

    /// Every session of this `Db` starts read only
    /// (`default_transaction_read_only = on`): the server refuses any write.
    pub(super) fn read_only(url: &str, options: PgOptions) -> Result<Db, StorageError> {
        let mut config: Config = url.parse().map_err(StorageError::new)?;
        let mut session = config.get_options().unwrap_or("").to_owned();
        session.push_str(" -c default_transaction_read_only=on");
        config.options(session.trim());
        Db::with_config(config, options)
    }

    fn with_config(mut config: Config, options: PgOptions) -> Result<Db, StorageError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config
            .keepalives(true)
            .keepalives_idle(options.keepalive_idle)
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .application_name("backchannel");
        let target = describe(&config);
        Ok(Db {
            config,
            options,
            target,
        })
    }

    pub(crate) async fn connect(
        &self,
        notifications: Option<mpsc::UnboundedSender<Notification>>,
    ) -> Result<Conn, StorageError> {
        let (client, mut connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(StorageError::new)?;
        let (notice_tx, notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        let _ = notice_tx.send(notice);
                    }
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        if let Some(tx) = &notifications {
                            let _ = tx.send(note);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "a PostgreSQL connection ended");
                        break;
                    }
                    None => break,
                }
            }
        });
        let millis = self.options.idle_in_transaction_timeout.as_millis().max(1);
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {millis}"
            ))
            .await
            .map_err(StorageError::new)?;
        Ok(Conn { client, notices })
    }

    pub(super) fn open_error(&self, source: StorageError) -> OpenError {
        OpenError::Storage {
            path: PathBuf::from(&self.target),
            source,
        }
    }

    /// A read that failed while opening: a storage failure as such, anything
    /// else (a broken or undecodable log) as [`OpenError::Corrupt`].
    pub(super) fn open_failure(&self, err: Error) -> OpenError {
        match err {
            Error::Storage(source) => self.open_error(source),
            other => OpenError::Corrupt {
                path: PathBuf::from(&self.target),
                reason: other.to_string(),
            },
        }
    }
}

/// `postgres://user@host:port[,host:port…]/dbname`, never the password.
pub(crate) fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(host) => host.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!(
        "postgres://{}@{hosts}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}
