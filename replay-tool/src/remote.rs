//! `--server URL --token T`: a running server's log over `GET /log` (see
//! `backchannel_api::log_export`), fetched page by page into a temporary
//! portable file, so every command then reads it exactly like `--file`, hash
//! chain included.
//!
//! The client is `reqwest`'s blocking one, with rustls: `http://` or
//! `https://` (certificates checked against the Mozilla roots). Every page's
//! body is bounded ([`MAX_BODY_BYTES`]) before it is read into memory.
//! The first page fixes the snapshot (`x-backchannel-upto` and its hash); the
//! next pages ask for `to=upto`, so appends made meanwhile are not included.
//! The first page's `x-backchannel-upto-mac` (the server's MAC of that head)
//! goes into the file's header, so `verify --server --key` and `export
//! --server` carry the server's own authentication.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::time::Duration;

use backchannel_eventlog::codec;
use backchannel_eventlog::parse_hash;
use backchannel_eventlog::portable::PortableWriter;
use reqwest::Url;
use reqwest::blocking::{Client, Response};

use crate::failure::{Failure, Kind};
use crate::progress::Progress;

/// Records per page asked of the server (its cap).
pub const PAGE: u64 = 10_000;
/// The most a page's body can hold (PAGE records at the largest record size,
/// each with its length prefix), with room for an error body: anything larger
/// is refused before memory is reserved for it.
const MAX_BODY_BYTES: u64 =
    PAGE * (4 + backchannel_eventlog::codec::MAX_RECORD_BYTES as u64) + 64 * 1024;

/// `--server URL --token T [--server-ca PEM]`.
#[derive(Debug, Clone, Copy)]
pub struct Server<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub ca: Option<&'a Path>,
}

/// A server's `GET /log`, and the client that asks it.
struct Endpoint {
    client: Client,
    /// `…/log` under the server's URL (which may have a path prefix).
    log: Url,
    /// The URL as given, for messages.
    url: String,
    token: String,
}

impl Endpoint {
    fn new(url: &str, token: &str, ca: Option<&Path>) -> Result<Endpoint, Failure> {
        let usage = |why: String| Failure::new(Kind::Usage, format!("--server {url:?}: {why}"));
        let mut log = Url::parse(url).map_err(|err| usage(format!("{err}")))?;
        if !matches!(log.scheme(), "http" | "https") || log.host().is_none() {
            return Err(usage(
                "expected http://HOST[:PORT] or https://HOST[:PORT]".into(),
            ));
        }
        let path = format!("{}/log", log.path().trim_end_matches('/'));
        log.set_path(&path);
        log.set_query(None);
        let mut client = Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(120));
        if let Some(ca) = ca {
            client = client.add_root_certificate(certificate(ca)?);
        }
        let client = client
            .build()
            .map_err(|err| Failure::new(Kind::Unavailable, format!("--server {url}: {err}")))?;
        Ok(Endpoint {
            client,
            log,
            url: url.to_owned(),
            token: token.to_owned(),
        })
    }

    fn fetch(&self, from: u64, limit: u64, to: Option<u64>) -> Result<Page, Failure> {
        let url = &self.url;
        let mut query = vec![("from", from), ("limit", limit)];
        query.extend(to.map(|to| ("to", to)));
        let unavailable =
            |why: String| Failure::new(Kind::Unavailable, format!("--server {url}: {why}"));
        let response = self
            .client
            .get(self.log.clone())
            .query(&query)
            .bearer_auth(&self.token)
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.backchannel.log-page",
            )
            .send()
            .map_err(|err| {
                let what = if err.is_connect() {
                    "cannot connect"
                } else {
                    "the request failed"
                };
                unavailable(format!("{what}: {}", error_chain(&err)))
            })?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let codec_version = header("x-backchannel-codec");
        let upto = header("x-backchannel-upto");
        let upto_hash = header("x-backchannel-upto-hash");
        let upto_mac = header("x-backchannel-upto-mac");
        let body = read_bounded(response).map_err(unavailable)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let error = &v["errors"][0];
                    Some(format!(
                        "{} ({})",
                        error["message"].as_str()?,
                        error["extensions"]["code"].as_str().unwrap_or("?")
                    ))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let kind = match status.as_u16() {
                401 | 403 => Kind::Forbidden,
                _ => Kind::Unavailable,
            };
            return Err(Failure::new(
                kind,
                format!(
                    "--server {url}: GET /log answered {}: {message}",
                    status.as_u16()
                ),
            ));
        }
        let bad = |why: String| Failure::new(Kind::BadInput, format!("--server {url}: {why}"));
        if let Some(codec_version) = codec_version
            && codec_version != codec::CODEC_VERSION.to_string()
        {
            return Err(bad(format!(
                "the server's records are codec version {codec_version}, this build reads {}",
                codec::CODEC_VERSION
            )));
        }
        let upto = upto.and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            bad("no x-backchannel-upto header: not a Backchannel log page".into())
        })?;
        let upto_hash = upto_hash
            .as_deref()
            .and_then(parse_hash)
            .ok_or_else(|| bad("no valid x-backchannel-upto-hash header".into()))?;
        let upto_mac = match upto_mac {
            None => None,
            Some(mac) => Some(
                parse_hash(&mac)
                    .ok_or_else(|| bad("an invalid x-backchannel-upto-mac header".into()))?,
            ),
        };
        Ok(Page {
            upto,
            upto_hash,
            upto_mac,
            body,
        })
    }
}

/// One page of the log as the server answered it.
struct Page {
    upto: u64,
    upto_hash: [u8; 32],
    /// The server's MAC of (`upto`, `upto_hash`), if it sent one.
    upto_mac: Option<[u8; 32]>,
    body: Vec<u8>,
}

/// The body, refused once it is larger than a page can be (whatever
/// Content-Length says, and before reserving memory for a declared length).
fn read_bounded(response: Response) -> Result<Vec<u8>, String> {
    let too_large =
        || format!("the response body is larger than a page can be ({MAX_BODY_BYTES} bytes)");
    let declared = response.content_length();
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    response
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|err| format!("reading the response failed: {err}"))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

/// An error with its causes ("error sending request: … : connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        message.push_str(": ");
        message.push_str(&err.to_string());
        cause = err.source();
    }
    message
}

/// `--server-ca`: one PEM certificate, trusted as a root besides the usual
/// ones (a private CA, or a self-signed server certificate).
fn certificate(path: &Path) -> Result<reqwest::Certificate, Failure> {
    let usage = |why: String| {
        Failure::new(
            Kind::Usage,
            format!("--server-ca {}: {why}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|err| usage(err.to_string()))?;
    if !pem.starts_with(b"-----BEGIN CERTIFICATE-----") {
        return Err(usage(
            "not a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    reqwest::Certificate::from_pem(&pem).map_err(|err| usage(err.to_string()))
}

/// Fetches the whole log (as of the first page) into `file` as a portable
/// file, checking the chain as the records arrive. Returns the event count.
pub fn download(
    server: &Server<'_>,
    page_size: u64,
    file: &Path,
    progress: &Progress,
) -> Result<u64, Failure> {
    let (url, token) = (server.url, server.token);
    let endpoint = Endpoint::new(url, token, server.ca)?;
    let first = endpoint.fetch(1, page_size, None)?;
    let upto = first.upto;
    let out = File::create(file)
        .map_err(|err| Failure::new(Kind::Io, format!("{}: {err}", file.display())))?;
    let broken = |err: backchannel_eventlog::portable::PortableError| {
        let kind = match err {
            backchannel_eventlog::portable::PortableError::Io(_) => Kind::Io,
            _ => Kind::Broken,
        };
        Failure::new(kind, format!("--server {url}: {err}"))
    };
    // The first page's head, with the server's MAC: the file is
    // authenticated exactly as the server vouched for it.
    let mut writer = PortableWriter::with_mac(
        BufWriter::with_capacity(1 << 20, out),
        upto,
        first.upto_hash,
        first.upto_mac,
    )
    .map_err(broken)?;
    progress.start_pass(upto);
    let mut next = 1;
    let mut page = first;
    loop {
        let mut body = page.body.as_slice();
        while !body.is_empty() {
            let framing = || {
                Failure::new(
                    Kind::Broken,
                    format!("--server {url}: a page's framing is broken near position {next}"),
                )
            };
            let (len, rest) = body.split_first_chunk::<4>().ok_or_else(framing)?;
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 || len > rest.len() {
                return Err(framing());
            }
            let (record, rest) = rest.split_at(len);
            writer.push(record).map_err(broken)?;
            progress.at(next);
            next += 1;
            body = rest;
        }
        if next > upto {
            break;
        }
        page = endpoint.fetch(next, page_size, Some(upto))?;
        if page.body.is_empty() {
            return Err(Failure::new(
                Kind::Broken,
                format!("--server {url}: the server sent no records from position {next} on"),
            ));
        }
    }
    writer.finish().map_err(broken)?;
    progress.end_pass();
    Ok(upto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_url(url: &str) -> Result<String, String> {
        Endpoint::new(url, "t", None)
            .map(|e| e.log.to_string())
            .map_err(|f| f.message)
    }

    #[test]
    fn urls() {
        assert_eq!(
            log_url("http://127.0.0.1:8080"),
            Ok("http://127.0.0.1:8080/log".into())
        );
        assert_eq!(
            log_url("https://desk.lan/backchannel/"),
            Ok("https://desk.lan/backchannel/log".into())
        );
        assert!(log_url("ftp://x").is_err());
        assert!(log_url("desk.lan:8080").is_err());
    }
}
