//! Values that parse, don't validate: once a `MessageBody` or a `Name` exists,
//! it satisfies SPEC section 8's bounds, so no later layer checks them again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest message body, in characters, after trimming.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest name (company, staff, group, customer), in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 200;

/// Most origins one company's widget may be embedded on.
pub const MAX_WIDGET_ORIGINS: usize = 20;
/// Longest widget origin, in characters.
pub const MAX_ORIGIN_CHARS: usize = 200;

/// Why a value was rejected at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "{input:?} is not an origin: give scheme://host[:port] with http or https, no path ({reason})"
    )]
    NotAnOrigin { input: String, reason: &'static str },
    #[error("at most {max} widget origins, got {actual}")]
    TooMany { max: usize, actual: usize },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters, got {actual}")]
    TooLong {
        what: &'static str,
        max: usize,
        actual: usize,
    },
}

fn parse_bounded(input: &str, what: &'static str, max: usize) -> Result<String, ValueError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ValueError::Empty { what });
    }
    let actual = trimmed.chars().count();
    if actual > max {
        return Err(ValueError::TooLong { what, max, actual });
    }
    Ok(trimmed.to_owned())
}

/// The text of a public or private message: 1..=10,000 characters after trimming.
///
/// Deserialization does not re-check the bounds: stored events were checked when
/// they were written and must stay readable even if the bounds change later.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "message body", MAX_MESSAGE_CHARS).map(Self)
    }

    /// A body as it was stored (opened from its sealed form): checked when it
    /// was written, so not checked again, like a deserialized one.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human-readable name: 1..=200 characters after trimming.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "name", MAX_NAME_CHARS).map(Self)
    }

    /// A name as it was stored (opened from its sealed form): checked when it
    /// was written, so not checked again, like a deserialized one.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a conversation is erased (SPEC section 12): 1..=500 characters after
/// trimming, recorded with the erasure.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErasureReason(String);

/// The longest erasure reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

impl ErasureReason {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "reason", MAX_REASON_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ErasureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A conversation's customer data (its customer's name, its messages'
/// bodies) as one reader holds it (SPEC section 12).
///
/// `decide` makes [`Content::Plain`] values; the event log seals them under
/// the conversation's data key when it appends them, and opens them again when
/// it reads them back with the key store beside it. A reader without keys (an
/// export read without its key bundle) gets [`Content::Sealed`]; once the
/// conversation is erased, every reader gets [`Content::Erased`]. Only values
/// written before encryption existed are [`Content::Legacy`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content<T> {
    /// Readable; sealed in the log (or to be sealed when appended).
    Plain(T),
    /// Readable; stored in clear, before encryption existed (the plaintext
    /// era). Such a conversation cannot be erased in place.
    Legacy(T),
    /// Stored sealed; this reader holds no key for it.
    Sealed(SealedValue),
    /// The conversation was erased: its data key is destroyed.
    Erased,
}

impl<T> Content<T> {
    /// The plaintext, if this reader can read it.
    pub fn readable(&self) -> Option<&T> {
        match self {
            Content::Plain(value) | Content::Legacy(value) => Some(value),
            Content::Sealed(_) | Content::Erased => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Content::Erased)
    }

    /// True for values stored in clear (the plaintext era).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Content::Legacy(_))
    }
}

impl<T: fmt::Display> Content<T> {
    /// The plaintext, or a marker: `[erased]` or `[sealed]` (no key here).
    pub fn shown(&self) -> String {
        match self {
            Content::Plain(value) | Content::Legacy(value) => value.to_string(),
            Content::Sealed(_) => SEALED_MARKER.to_owned(),
            Content::Erased => ERASED_MARKER.to_owned(),
        }
    }
}

impl<T: AsRef<str>> Content<T> {
    /// The plaintext, or the marker [`ERASED_MARKER`] or [`SEALED_MARKER`].
    pub fn text(&self) -> &str {
        match self {
            Content::Plain(value) | Content::Legacy(value) => value.as_ref(),
            Content::Sealed(_) => SEALED_MARKER,
            Content::Erased => ERASED_MARKER,
        }
    }
}

/// What text outputs (reports, the replay tool) show for erased content.
pub const ERASED_MARKER: &str = "[erased]";
/// What text outputs show for sealed content read without its key.
pub const SEALED_MARKER: &str = "[sealed]";

impl<T: fmt::Debug> fmt::Debug for Content<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Plain(value) => f.debug_tuple("Plain").field(value).finish(),
            Content::Legacy(value) => f.debug_tuple("Legacy").field(value).finish(),
            Content::Sealed(sealed) => write!(f, "Sealed({} bytes)", sealed.0.len()),
            Content::Erased => f.write_str("Erased"),
        }
    }
}

/// Sealed bytes as the log stores them (format byte, nonce, ciphertext,
/// tag); opaque outside the event log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue(Vec<u8>);

impl SealedValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        SealedValue(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedValue({} bytes)", self.0.len())
    }
}

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

impl fmt::Debug for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MessageBody {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_body(input: &str, expect: Result<&str, ValueError>) {
        let got = MessageBody::parse(input);
        assert_eq!(
            got.as_ref().map(MessageBody::as_str),
            expect.as_ref().copied()
        );
    }

    #[test]
    fn message_bodies_are_trimmed_and_bounded() {
        check_body("  hello  ", Ok("hello"));
        check_body(
            "",
            Err(ValueError::Empty {
                what: "message body",
            }),
        );
        check_body(
            " \n\t ",
            Err(ValueError::Empty {
                what: "message body",
            }),
        );
        let max = "é".repeat(MAX_MESSAGE_CHARS);
        check_body(&max, Ok(&max));
        check_body(
            &"x".repeat(MAX_MESSAGE_CHARS + 1),
            Err(ValueError::TooLong {
                what: "message body",
                max: MAX_MESSAGE_CHARS,
                actual: MAX_MESSAGE_CHARS + 1,
            }),
        );
    }

    fn check_origin(input: &str, expect: Option<&str>) {
        let got = WebOrigin::parse(input);
        assert_eq!(
            got.as_ref().ok().map(WebOrigin::as_str),
            expect,
            "{input:?} gave {got:?}"
        );
    }

    #[test]
    fn widget_origins_are_normalised_as_browsers_send_them() {
        check_origin("https://shop.example", Some("https://shop.example"));
        check_origin(" HTTPS://Shop.Example/ ", Some("https://shop.example"));
        check_origin("https://shop.example:443", Some("https://shop.example"));
        check_origin("http://shop.example:80", Some("http://shop.example"));
        check_origin("http://localhost:3000", Some("http://localhost:3000"));
        check_origin(
            "https://shop.example:8443",
            Some("https://shop.example:8443"),
        );
        check_origin("http://127.0.0.1:8080", Some("http://127.0.0.1:8080"));
        check_origin("http://[::1]:8080", Some("http://[::1]:8080"));
        check_origin("http://[::1]", Some("http://[::1]"));
    }

    #[test]
    fn widget_origins_refuse_anything_but_scheme_host_and_port() {
        for bad in [
            "",
            "shop.example",
            "ftp://shop.example",
            "javascript://x",
            "https://",
            "https://shop.example/widget",
            "https://shop.example?x=1",
            "https://shop.example#x",
            "https://user@shop.example",
            "https://shop..example",
            "https://shop_example.com",
            "https://shop.example:",
            "https://shop.example:0",
            "https://shop.example:65536",
            "https://shop.example:08",
            "https://bücher.example",
            "https://[::1",
            "https://[]",
            "https://[::1]x",
            "https://*.shop.example",
            "null",
        ] {
            check_origin(bad, None);
        }
        let long = format!("https://{}.example", "a".repeat(MAX_ORIGIN_CHARS));
        assert!(matches!(
            WebOrigin::parse(&long),
            Err(ValueError::TooLong { what: "origin", .. })
        ));
    }

    #[test]
    fn widget_origin_lists_are_bounded_sorted_and_deduplicated() {
        let list = WidgetOrigins::parse(&[
            "https://b.example",
            "https://a.example",
            "HTTPS://B.example/",
        ])
        .unwrap();
        let got: Vec<&str> = list.as_slice().iter().map(WebOrigin::as_str).collect();
        assert_eq!(got, ["https://a.example", "https://b.example"]);
        assert!(list.allows("https://a.example"));
        assert!(!list.allows("https://A.example"));
        assert!(!list.allows("https://c.example"));
        let many: Vec<String> = (0..=MAX_WIDGET_ORIGINS)
            .map(|i| format!("https://s{i}.example"))
            .collect();
        assert_eq!(
            WidgetOrigins::parse(&many),
            Err(ValueError::TooMany {
                max: MAX_WIDGET_ORIGINS,
                actual: MAX_WIDGET_ORIGINS + 1
            })
        );
        assert!(WidgetOrigins::parse(&many[..MAX_WIDGET_ORIGINS]).is_ok());
        assert!(
            WidgetOrigins::parse::<&str>(&[])
                .unwrap()
                .as_slice()
                .is_empty()
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse(" Support ").unwrap().as_str(), "Support");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"n".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            Name::parse(&"n".repeat(MAX_NAME_CHARS + 1)),
            Err(ValueError::TooLong {
                what: "name",
                max: MAX_NAME_CHARS,
                actual: MAX_NAME_CHARS + 1
            })
        );
    }
}
