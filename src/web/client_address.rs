//! Who is asking: the client's address, the one value throttling, logs and audit events use.
//!
//! DESIGN.md "Client address and proxies": only when the TCP peer is one of
//! `http.trusted_proxies` are `Forwarded` (RFC 7239 `for=`, `proto=`) or, without it,
//! `X-Forwarded-For` / `X-Forwarded-Proto` read, and then the right-most address that is not
//! itself a trusted proxy is the client (every proxy appends the address it saw, so entries to
//! the left of the first untrusted one may have been written by the client and prove nothing).
//! From anyone else the headers are ignored. The issuer never comes from these headers.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::{canonical, Cidr};

/// The client as Sigil sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    pub ip: IpAddr,
    /// The scheme the client used, when a trusted proxy said so.
    pub proto: Option<String>,
}

impl ClientAddress {
    /// The key brute-force limits count under: the address, or for IPv6 its /64 (one host
    /// usually holds a whole /64, so single IPv6 addresses would be free to rotate).
    pub fn throttle_bucket(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ip.fmt(f)
    }
}

/// The client address of `req` under `trusted`.
pub fn of(req: &HttpRequest, trusted: &[Cidr]) -> ClientAddress {
    let peer = req
        .peer_addr()
        .map(|a| canonical(a.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let headers = req.headers();
    let lines = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    resolve(
        peer,
        trusted,
        &lines("forwarded"),
        &lines("x-forwarded-for"),
        &lines("x-forwarded-proto"),
    )
}

/// The rules of [`of`] on plain values (header lines in the order they arrived).
pub fn resolve(
    peer: IpAddr,
    trusted: &[Cidr],
    forwarded: &[&str],
    x_forwarded_for: &[&str],
    x_forwarded_proto: &[&str],
) -> ClientAddress {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let direct = ClientAddress {
        ip: peer,
        proto: None,
    };
    if !is_trusted(peer) {
        return direct;
    }
    // Each hop as (address if one was given, proto), left (client side) to right.
    let hops: Vec<(Option<IpAddr>, Option<String>)> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(forwarded_element)
            .collect()
    } else {
        let proto = x_forwarded_proto
            .iter()
            .flat_map(|l| l.split(','))
            .next_back()
            .map(|p| p.trim().to_ascii_lowercase());
        let mut hops: Vec<_> = x_forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(|item| (parse_node(item.trim()), None))
            .collect();
        if let Some(last) = hops.last_mut() {
            last.1 = proto;
        }
        hops
    };
    let mut found = direct;
    for (ip, proto) in hops.into_iter().rev() {
        // An address that cannot be read (`unknown`, an obfuscated name, garbage) ends the
        // walk: nothing to its left can be attributed to anyone.
        let Some(ip) = ip else { break };
        found = ClientAddress {
            ip,
            proto: proto.or(found.proto),
        };
        if !is_trusted(ip) {
            break;
        }
    }
    found
}

/// One `Forwarded` element (`for=192.0.2.60;proto=https;by=…`).
fn forwarded_element(element: &str) -> (Option<IpAddr>, Option<String>) {
    let mut ip = None;
    let mut proto = None;
    for pair in element.split(';') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "for" => ip = parse_node(value),
            "proto" => proto = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    (ip, proto)
}

/// RFC 7239 §6 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`, `[2001:db8::17]:4711`,
/// or (X-Forwarded-For) a bare IPv6 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let got = resolve(ip("203.0.113.9"), &[], &[], &["1.2.3.4"], &["https"]);
        assert_eq!(got.ip, ip("203.0.113.9"));
        assert_eq!(got.proto, None);
        let trusted = cidrs(&["10.0.0.0/8"]);
        let got = resolve(ip("203.0.113.9"), &trusted, &["for=1.2.3.4"], &[], &[]);
        assert_eq!(got.ip, ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // The client wrote "6.6.6.6" itself; the proxy appended the address it saw.
        let got = resolve(
            ip("10.0.0.2"),
            &trusted,
            &[],
            &["6.6.6.6, 198.51.100.7", "10.0.0.5"],
            &["https"],
        );
        assert_eq!(got.ip, ip("198.51.100.7"));
        let got = resolve(ip("10.0.0.2"), &trusted, &[], &[], &[]);
        assert_eq!(got.ip, ip("10.0.0.2"), "no header: the proxy itself");
        let got = resolve(
            ip("10.0.0.2"),
            &trusted,
            &[],
            &["garbage, 198.51.100.7"],
            &[],
        );
        assert_eq!(got.ip, ip("198.51.100.7"));
        let got = resolve(
            ip("10.0.0.2"),
            &trusted,
            &[],
            &["198.51.100.7, garbage"],
            &[],
        );
        assert_eq!(got.ip, ip("10.0.0.2"), "an unreadable hop stops the walk");
    }

    #[test]
    fn forwarded_wins_and_is_parsed_per_rfc_7239() {
        let trusted = cidrs(&["127.0.0.1", "::1"]);
        let got = resolve(
            ip("127.0.0.1"),
            &trusted,
            &[r#"for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.1"#],
            &["9.9.9.9"],
            &[],
        );
        assert_eq!(got.ip, ip("2001:db8:cafe::17"));
        assert_eq!(got.proto.as_deref(), Some("https"));
        let got = resolve(
            ip("::1"),
            &trusted,
            &["for=192.0.2.60:8080;proto=http"],
            &[],
            &[],
        );
        assert_eq!(got.ip, ip("192.0.2.60"));
        let got = resolve(ip("::1"), &trusted, &["for=_hidden"], &[], &[]);
        assert_eq!(got.ip, ip("::1"));
    }

    #[test]
    fn ipv6_clients_are_throttled_by_their_64() {
        let a = ClientAddress {
            ip: ip("2001:db8:1:2:aaaa::1"),
            proto: None,
        };
        let b = ClientAddress {
            ip: ip("2001:db8:1:2:bbbb::2"),
            proto: None,
        };
        assert_eq!(a.throttle_bucket(), b.throttle_bucket());
        assert_eq!(a.throttle_bucket(), "2001:db8:1:2::/64");
        let v4 = ClientAddress {
            ip: ip("::ffff:192.0.2.1"),
            proto: None,
        };
        assert_eq!(canonical(v4.ip).to_string(), "192.0.2.1");
    }
}
