//! Widget origins: [`WebOrigin`], one origin exactly as a browser sends it,
//! and [`WidgetOrigins`], a company's bounded, sorted set of them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{MAX_ORIGIN_CHARS, MAX_WIDGET_ORIGINS, ValueError};

/// A web origin the customer widget may call from: `scheme://host[:port]`
/// exactly as a browser sends it in `Origin` (http or https, lowercase, no
/// default port, no path), so matching a request's `Origin` is a string
/// comparison.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebOrigin(String);

impl WebOrigin {
    /// Accepts what an operator would type: surrounding blanks, upper case and
    /// one trailing `/` are forgiven; a default port is dropped, as browsers do.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let refuse = |reason| ValueError::NotAnOrigin {
            input: input.chars().take(MAX_ORIGIN_CHARS).collect(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.chars().count() > MAX_ORIGIN_CHARS {
            return Err(ValueError::TooLong {
                what: "origin",
                max: MAX_ORIGIN_CHARS,
                actual: trimmed.chars().count(),
            });
        }
        if !trimmed.is_ascii() {
            return Err(refuse(
                "only ASCII: write an international name in punycode",
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(|| refuse("no scheme"))?;
        let default_port = match scheme {
            "http" => "80",
            "https" => "443",
            _ => return Err(refuse("the scheme must be http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@', '\\']) {
            return Err(refuse("only scheme, host and port"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').ok_or_else(|| refuse("unclosed ["))?;
            if inside.is_empty()
                || !inside
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err(refuse("a bad IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| refuse("junk after the host"))?,
                ),
            };
            (&authority[..inside.len() + 2], port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let host_ok = host.starts_with('[')
            || (!host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        if !host_ok {
            return Err(refuse("a bad host name"));
        }
        let port = match port {
            None => None,
            Some(p) => {
                let number: u16 = p.parse().map_err(|_| refuse("a bad port"))?;
                if number == 0 || p.starts_with('0') {
                    return Err(refuse("a bad port"));
                }
                (p != default_port).then_some(p)
            }
        };
        Ok(WebOrigin(match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A company's widget origins: at most [`MAX_WIDGET_ORIGINS`], each parsed,
/// sorted and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WidgetOrigins(Vec<WebOrigin>);

impl WidgetOrigins {
    pub fn parse<S: AsRef<str>>(inputs: &[S]) -> Result<Self, ValueError> {
        if inputs.len() > MAX_WIDGET_ORIGINS {
            return Err(ValueError::TooMany {
                max: MAX_WIDGET_ORIGINS,
                actual: inputs.len(),
            });
        }
        let mut origins = inputs
            .iter()
            .map(|s| WebOrigin::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        origins.sort();
        origins.dedup();
        Ok(WidgetOrigins(origins))
    }

    pub fn as_slice(&self) -> &[WebOrigin] {
        &self.0
    }

    /// Whether `origin` (a request's `Origin` header, as sent) is listed.
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.0 == origin)
    }
}

text_formatting!(WebOrigin);
