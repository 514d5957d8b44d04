//! The client address (DESIGN.md "Client address and proxies"; RFC 7239 `Forwarded`,
//! `X-Forwarded-For`, `X-Forwarded-Proto`) and the address blocks of `http.trusted_proxies`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use sigil::config::{canonical, Cidr};
use sigil::web::client_address::resolve;

use super::{check, hostile_text, mutated};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
    ]
}

/// Any text is an address block or refused; a block contains exactly the addresses that share
/// its first `prefix` bits, and prints as text that parses back to itself.
#[test]
fn cidrs_contain_exactly_their_prefix() {
    let text = prop_oneof![
        hostile_text(),
        mutated("10.0.0.0/8".into()),
        mutated("2001:db8::/32".into()),
        mutated("::ffff:192.0.2.0/120".into()),
    ];
    check("Cidr::from_str (any text)", text, |text| {
        if let Ok(c) = text.parse::<Cidr>() {
            prop_assert_eq!(c.to_string().parse::<Cidr>().unwrap(), c);
        }
        Ok(())
    });
    check(
        "Cidr::contains",
        (ip(), ip(), 0..=128u8),
        |(net, other, prefix)| {
            let net = canonical(net);
            let bits = if net.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.min(bits);
            let cidr: Cidr = format!("{net}/{prefix}").parse().expect("a block");
            prop_assert!(cidr.contains(net));
            let other = canonical(other);
            let same = match (net, other) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    (u32::from(a) ^ u32::from(b))
                        .checked_shr(32 - u32::from(prefix))
                        .unwrap_or(0)
                        == 0
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    (u128::from(a) ^ u128::from(b))
                        .checked_shr(128 - u32::from(prefix))
                        .unwrap_or(0)
                        == 0
                }
                _ => false,
            };
            prop_assert_eq!(cidr.contains(other), same, "{} in {}", other, cidr);
            Ok(())
        },
    );
}

/// Every address written in `text` (bare, with a port, or in brackets), canonical.
fn addresses_in(text: &str) -> Vec<IpAddr> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
        .filter_map(|word| {
            word.parse::<IpAddr>().ok().or_else(|| {
                let (host, _port) = word.rsplit_once(':')?;
                host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
            })
        })
        .map(canonical)
        .collect()
}

fn refs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// One forwarding header line as a client could write it.
fn header_line() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_text(),
        mutated(r#"for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.60;by=x"#.into()),
        mutated("203.0.113.9, 198.51.100.7:8080, unknown, [::1]".into()),
        proptest::collection::vec(ip(), 0..40).prop_map(|ips| {
            ips.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }),
        Just(",".repeat(10_000)),
        Just(";=".repeat(5_000)),
    ]
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(header_line(), 0..3)
}

/// From a peer that is not a trusted proxy, no header changes anything; from a trusted one the
/// client is the peer or an address some header named — never a spoof of the headers'
/// own making when a trusted proxy appended the address it saw.
#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    let trusted: Vec<Cidr> = ["10.0.0.0/8", "::1", "192.0.2.0/24"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let input = (ip(), lines(), lines(), lines());
    check(
        "client_address::resolve",
        input,
        |(peer, fwd, xff, proto)| {
            let peer = canonical(peer);
            let (f, x, p) = (refs(&fwd), refs(&xff), refs(&proto));
            let got = resolve(peer, &trusted, &f, &x, &p);
            if !trusted.iter().any(|c| c.contains(peer)) {
                prop_assert_eq!(got.ip, peer);
                prop_assert_eq!(got.proto, None);
            } else if got.ip != peer {
                let named = if f.is_empty() { &xff } else { &fwd };
                prop_assert!(
                    named.iter().any(|l| addresses_in(l).contains(&got.ip)),
                    "{} is in none of {:?}",
                    got.ip,
                    named
                );
            }
            Ok(())
        },
    );
    // A trusted proxy appends the address it saw: whatever the client wrote to its left, that
    // address is the client.
    let spoof = (hostile_text(), any::<u32>(), any::<bool>());
    check(
        "client_address::resolve (spoofing)",
        spoof,
        |(written, n, forwarded)| {
            let real = Ipv4Addr::from(n);
            prop_assume!(!trusted.iter().any(|c| c.contains(IpAddr::V4(real))));
            let proxy: IpAddr = "10.0.0.2".parse().unwrap();
            let got = if forwarded {
                let line = format!("{written}, for={real}");
                resolve(proxy, &trusted, &[&line], &[], &[])
            } else {
                let line = format!("{written}, {real}");
                resolve(proxy, &trusted, &[], &[&line], &[])
            };
            prop_assert_eq!(got.ip, IpAddr::V4(real));
            Ok(())
        },
    );
}
