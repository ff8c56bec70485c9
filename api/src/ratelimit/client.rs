//! The client's address: who a request comes from (behind trusted proxies)
//! and how rate limits key it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The client's address as rate limits key it: an IPv4 address, or an IPv6
/// /64 (an IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddrKey(IpAddr);

impl From<IpAddr> for AddrKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    AddrKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// The TCP peer's address, in a request's data for resolvers. Without one
/// (a transport that does not give it) every such call shares one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

impl ClientAddr {
    pub(crate) const UNKNOWN: ClientAddr = ClientAddr(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

    pub(crate) fn key(&self) -> AddrKey {
        AddrKey::from(self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(ClientAddr::UNKNOWN);
        };
        Ok(match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => ClientAddr(trusted.client(peer.ip(), &parts.headers)),
            None => ClientAddr(peer.ip().to_canonical()),
        })
    }
}

/// `--trusted-proxy`: the address ranges whose `X-Forwarded-For` is believed
/// (a reverse proxy in front of the server). Empty: the header is ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(std::sync::Arc<[IpNet]>);

impl TrustedProxies {
    pub(crate) fn new(ranges: Vec<IpNet>) -> Self {
        TrustedProxies(ranges.into())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&ip))
    }

    /// The client behind the TCP peer `peer`: the peer itself unless it is a
    /// trusted proxy; else, walking `X-Forwarded-For` from the right (the
    /// hop nearest the server), the first address that is not a trusted
    /// proxy. A malformed entry stops the walk at the last trusted hop, so
    /// a client cannot pass for another by writing the header itself.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or("").rsplit(','));
        for hop in hops {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = hop.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// A `--trusted-proxy` value: a CIDR range or one address.
pub(crate) fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a CIDR range (e.g. 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies() {
        let trusted = TrustedProxies::new(vec![
            parse_trusted_proxy("10.0.0.0/8").unwrap(),
            parse_trusted_proxy("::1").unwrap(),
        ]);
        let client = |peer: &str, forwarded: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            trusted.client(peer.parse().unwrap(), &headers).to_string()
        };
        // Not a proxy: the peer, whatever the header says.
        assert_eq!(client("192.0.2.1", &["198.51.100.1"]), "192.0.2.1");
        // A proxy: the right-most untrusted hop, across repeated headers.
        assert_eq!(
            client("10.1.1.1", &["198.51.100.1, 203.0.113.5"]),
            "203.0.113.5"
        );
        assert_eq!(
            client("::1", &["198.51.100.1", "203.0.113.5, 10.2.2.2"]),
            "203.0.113.5"
        );
        assert_eq!(client("::ffff:10.1.1.1", &["203.0.113.5"]), "203.0.113.5");
        // No header, or only proxies: the last proxy.
        assert_eq!(client("10.1.1.1", &[]), "10.1.1.1");
        assert_eq!(client("10.1.1.1", &["10.3.3.3"]), "10.3.3.3");
        // A malformed hop stops the walk at the last trusted one.
        assert_eq!(client("10.1.1.1", &["203.0.113.5, unknown"]), "10.1.1.1");
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("proxy.lan").is_err());
    }

    #[test]
    fn an_ipv6_host_is_keyed_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let key = |s: &str| ClientAddr(s.parse().unwrap()).key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }
}
