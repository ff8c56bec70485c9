//! `--server URL --token T`: a running server's log over `GET /log` (see
//! `backchannel_api::log_export`), fetched page by page into a temporary
//! portable file, so every command then reads it exactly like `--file`, hash
//! chain included.
//!
//! The client is a minimal HTTP/1.1 one over `std::net::TcpStream`: plain
//! `http://` only (loopback or a trusted LAN; put TLS in front of the server
//! and use an SSH tunnel or a local proxy otherwise), one connection per page.
//! The first page fixes the snapshot (`x-backchannel-upto` and its hash); the
//! next pages ask for `to=upto`, so appends made meanwhile are not included.
//! The first page's `x-backchannel-upto-mac` (the server's MAC of that head)
//! goes into the file's header, so `verify --server --key` and `export
//! --server` carry the server's own authentication.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use backchannel_eventlog::codec;
use backchannel_eventlog::portable::PortableWriter;

use crate::failure::{Failure, Kind};
use crate::progress::Progress;

/// Records per page asked of the server (its cap).
pub const PAGE: u64 = 10_000;
/// The most a page's body can hold (PAGE records at the largest record size,
/// each with its length prefix), with room for an error body: anything larger
/// is refused before memory is reserved for it.
const MAX_BODY_BYTES: usize =
    PAGE as usize * (4 + backchannel_eventlog::codec::MAX_RECORD_BYTES) + 64 * 1024;

/// Where the server is.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `host:port`, for the connection and the Host header.
    authority: String,
    /// The URL's path without its trailing slash ("" for the root).
    base: String,
}

fn parse_url(url: &str) -> Result<Endpoint, Failure> {
    let usage = |why: &str| Failure::new(Kind::Usage, format!("--server {url:?}: {why}"));
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(usage(
            "https is not supported: the replay tool speaks plain http (loopback or a trusted \
             LAN; tunnel to the server otherwise)",
        ));
    } else {
        return Err(usage("expected http://HOST:PORT"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(usage("no host"));
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Endpoint {
        authority,
        base: path.trim_end_matches('/').to_owned(),
    })
}

/// One page of the log as the server answered it.
struct Page {
    upto: u64,
    upto_hash: [u8; 32],
    /// The server's MAC of (`upto`, `upto_hash`), if it sent one.
    upto_mac: Option<[u8; 32]>,
    body: Vec<u8>,
}

/// A response: status, lower-cased headers, body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn get(endpoint: &Endpoint, path: &str, token: &str) -> Result<Response, String> {
    let mut stream = TcpStream::connect(&endpoint.authority)
        .map_err(|err| format!("cannot connect to {}: {err}", endpoint.authority))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/vnd.backchannel.log-page\r\nConnection: close\r\n\r\n",
        endpoint.base, endpoint.authority
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("sending the request failed: {err}"))?;
    let mut reader = BufReader::new(stream);
    let broken = |err: std::io::Error| format!("reading the response failed: {err}");
    let mut line = String::new();
    reader.read_line(&mut line).map_err(broken)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", line.trim_end()))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(broken)? == 0 {
            return Err("the response ends inside its headers".to_owned());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(broken)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size {:?}", line.trim()))?;
            if size == 0 {
                break;
            }
            let start = response.body.len();
            if size > MAX_BODY_BYTES - start {
                return Err(format!(
                    "the response body is larger than a page can be ({MAX_BODY_BYTES} bytes)"
                ));
            }
            response.body.resize(start + size, 0);
            reader
                .read_exact(&mut response.body[start..])
                .map_err(broken)?;
            line.clear();
            reader.read_line(&mut line).map_err(broken)?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        if length > MAX_BODY_BYTES {
            return Err(format!(
                "Content-Length {length} is larger than a page can be ({MAX_BODY_BYTES} bytes)"
            ));
        }
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body).map_err(broken)?;
    } else {
        reader.read_to_end(&mut response.body).map_err(broken)?;
    }
    Ok(response)
}

fn fetch(
    endpoint: &Endpoint,
    url: &str,
    token: &str,
    from: u64,
    limit: u64,
    to: Option<u64>,
) -> Result<Page, Failure> {
    let mut path = format!("/log?from={from}&limit={limit}");
    if let Some(to) = to {
        path.push_str(&format!("&to={to}"));
    }
    let response = get(endpoint, &path, token)
        .map_err(|err| Failure::new(Kind::Unavailable, format!("--server {url}: {err}")))?;
    if response.status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| {
                let error = &v["errors"][0];
                Some(format!(
                    "{} ({})",
                    error["message"].as_str()?,
                    error["extensions"]["code"].as_str().unwrap_or("?")
                ))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
        let kind = match response.status {
            401 | 403 => Kind::Forbidden,
            404 => Kind::Unavailable,
            _ => Kind::Unavailable,
        };
        return Err(Failure::new(
            kind,
            format!(
                "--server {url}: GET /log answered {}: {message}",
                response.status
            ),
        ));
    }
    let bad = |why: String| Failure::new(Kind::BadInput, format!("--server {url}: {why}"));
    if let Some(codec_version) = response.header("x-backchannel-codec")
        && codec_version != codec::CODEC_VERSION.to_string()
    {
        return Err(bad(format!(
            "the server's records are codec version {codec_version}, this build reads {}",
            codec::CODEC_VERSION
        )));
    }
    let upto = response
        .header("x-backchannel-upto")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| bad("no x-backchannel-upto header: not a Backchannel log page".into()))?;
    let upto_hash = response
        .header("x-backchannel-upto-hash")
        .and_then(parse_hash)
        .ok_or_else(|| bad("no valid x-backchannel-upto-hash header".into()))?;
    let upto_mac = match response.header("x-backchannel-upto-mac") {
        None => None,
        Some(mac) => Some(
            parse_hash(mac)
                .ok_or_else(|| bad("an invalid x-backchannel-upto-mac header".into()))?,
        ),
    };
    Ok(Page {
        upto,
        upto_hash,
        upto_mac,
        body: response.body,
    })
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Fetches the whole log (as of the first page) into `file` as a portable
/// file, checking the chain as the records arrive. Returns the event count.
pub fn download(
    url: &str,
    token: &str,
    page_size: u64,
    file: &Path,
    progress: &Progress,
) -> Result<u64, Failure> {
    let endpoint = parse_url(url)?;
    let first = fetch(&endpoint, url, token, 1, page_size, None)?;
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
        page = fetch(&endpoint, url, token, next, page_size, Some(upto))?;
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

    #[test]
    fn urls() {
        let e = parse_url("http://127.0.0.1:8080").map_err(|f| f.message);
        assert_eq!(
            e.map(|e| (e.authority, e.base)),
            Ok(("127.0.0.1:8080".into(), String::new()))
        );
        let e = parse_url("http://desk.lan/backchannel/").map_err(|f| f.message);
        assert_eq!(
            e.map(|e| (e.authority, e.base)),
            Ok(("desk.lan:80".into(), "/backchannel".into()))
        );
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("ftp://x").is_err());
    }
}
