//! The address a request comes from, as sign-in throttling, the access log and audit events
//! see it. Without trusted proxies (`server.trusted_proxies`) it is the TCP peer. When the
//! peer is a trusted proxy, it is read from the proxies' chain, `Forwarded` (RFC 7239 §5.2,
//! its `for=` parameters) or else `X-Forwarded-For`: walking from the right (the nearest
//! proxy's end), each trusted hop is skipped, and the first untrusted one is the client. A
//! hop that is no address (`unknown`, an obfuscated identifier, garbage) ends the walk at
//! the trusted hop that named it. From an untrusted peer the headers are ignored, so no
//! caller can choose its own address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, header};
use ipnet::IpNet;

use crate::limits::MAX_FORWARDED_HOPS;

/// A request's client address, in its extensions (put there by [`TrustedProxies::put_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The client address of a request: the one [`TrustedProxies::put_in`] found, else the TCP peer, else
    /// (a router served without either) the unspecified address, one budget for every caller.
    pub fn of(extensions: &axum::http::Extensions) -> IpAddr {
        if let Some(ClientAddress(address)) = extensions.get::<ClientAddress>() {
            return *address;
        }
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(Arc::new(networks))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Puts `request`'s [`ClientAddress`] in its extensions (`server.rs` does, for every
    /// request), and returns it.
    pub fn put_in(&self, request: &mut Request) -> IpAddr {
        let peer = ClientAddress::of(request.extensions());
        let address = self.resolve(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(address));
        address
    }

    /// The client behind `peer`, given the request's headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers)).unwrap_or_default();
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_FORWARDED_HOPS) {
            let Some(address) = hop else { break };
            client = *address;
            if !self.trusts(*address) {
                break;
            }
        }
        client
    }
}

/// Every header `name` carries, as one comma-separated list (RFC 9110 §5.3).
fn elements<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<Vec<&'a str>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    Some(values.flat_map(|v| v.to_str().unwrap_or("").split(',')).map(str::trim).collect())
}

/// RFC 7239 §4: `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"`; each
/// element's `for`, `None` for one that names no address.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let elements = elements(headers, &header::FORWARDED)?;
    let hops = elements
        .into_iter()
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| node(value.trim().trim_matches('"')))
            })?
        })
        .collect();
    Some(hops)
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let elements = elements(headers, &header::HeaderName::from_static("x-forwarded-for"))?;
    Some(elements.into_iter().map(node).collect())
}

/// A node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`, `2001:db8::1`.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    text.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn the_nearest_untrusted_hop_from_the_right_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(proxies.resolve(peer, &h), "198.51.100.7".parse::<IpAddr>().unwrap());
        let h = headers(&[("forwarded", "for=203.0.113.9, for=\"[2001:db8::17]:4711\";proto=https")]);
        assert_eq!(proxies.resolve(peer, &h), "2001:db8::17".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-forwarded-for", "garbage, 10.0.0.5")]);
        assert_eq!(proxies.resolve(peer, &h), "10.0.0.5".parse::<IpAddr>().unwrap(), "ends at the trusted hop");
        let h = headers(&[("x-forwarded-for", "10.0.0.9"), ("x-forwarded-for", "10.0.0.5")]);
        assert_eq!(proxies.resolve(peer, &h), "10.0.0.9".parse::<IpAddr>().unwrap(), "all trusted: the farthest");
        assert_eq!(proxies.resolve(peer, &HeaderMap::new()), peer, "no header: the peer");
    }

    #[test]
    fn an_untrusted_peer_s_headers_are_ignored() {
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted(&["10.0.0.0/8"]).resolve(peer, &h), peer);
        assert_eq!(TrustedProxies::default().resolve(peer, &h), peer);
    }
}
