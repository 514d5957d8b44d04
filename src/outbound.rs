//! Requests Sigil makes itself — client `jwks_uri` fetches and back-channel logout deliveries —
//! through one HTTP client with SSRF rules: http(s) only, no redirects, a time limit, a cap on
//! the response size, and (unless `outbound.allow_private_networks`) no loopback, private,
//! link-local or otherwise non-public address, checked on the addresses actually connected to
//! (the resolver filters them), so a DNS name cannot point Sigil at an internal service. No
//! proxy is taken from the environment: a proxy would resolve and connect in Sigil's place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::config::OutboundSettings;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("request failed: {0}")]
    Failed(String),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the server answered {0}")]
    Status(u16),
}

/// The outbound HTTP client; cheap to clone. The HTTP client itself is made on first use: it
/// loads the system's CA certificates (about a megabyte of heap at its peak, a quarter of it
/// kept), which a Sigil that never calls out — most of them, most of the time — does not need.
#[derive(Clone)]
pub struct Outbound {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    timeout: Duration,
    allow_private: bool,
    max_bytes: usize,
}

impl Outbound {
    pub fn new(settings: &OutboundSettings) -> anyhow::Result<Self> {
        Ok(Self {
            client: Arc::new(OnceLock::new()),
            timeout: settings.timeout.0,
            allow_private: settings.allow_private_networks,
            max_bytes: settings.max_response_bytes,
        })
    }

    /// The HTTP client, made the first time it is needed.
    fn client(&self) -> Result<&reqwest::Client, OutboundError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    // SECURITY.md 30: a proxy from the environment (HTTP(S)_PROXY, ALL_PROXY)
                    // would resolve and connect to the target itself, past the resolver below.
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
                    .dns_resolver(Arc::new(PublicOnly {
                        allow_private: self.allow_private,
                    }))
                    .build()
                    .map_err(|e| format!("the outbound HTTP client could not be made: {e}"))
            })
            .as_ref()
            .map_err(|e| OutboundError::Failed(e.clone()))
    }

    /// Checks a target before any connection: http or https, a host, and — for a literal IP
    /// address, which the resolver never sees — a public one.
    pub fn check_url(&self, url: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(url).map_err(|e| OutboundError::Refused(format!("{url:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(OutboundError::Refused(format!(
                "scheme {:?} is not http(s)",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::Refused("no host".into())),
        };
        if let Some(ip) = ip {
            if !self.allow_private && !is_public(ip) {
                return Err(OutboundError::Refused(format!(
                    "{ip} is not a public address (outbound.allow_private_networks is off)"
                )));
            }
        }
        Ok(url)
    }

    /// GET a JSON document (a client's `jwks_uri`), at most `max_response_bytes`.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, OutboundError> {
        let url = self.check_url(url)?;
        let response = self
            .client()?
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(OutboundError::Status(response.status().as_u16()));
        }
        let body = self.read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|e| OutboundError::Failed(format!("not JSON: {e}")))
    }

    /// POST an `application/x-www-form-urlencoded` body; success is any 2xx.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(), OutboundError> {
        let url = self.check_url(url)?;
        let response = self
            .client()?
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(failed)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(OutboundError::Status(response.status().as_u16()))
        }
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, OutboundError> {
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(OutboundError::TooLarge(self.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(OutboundError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn failed(e: reqwest::Error) -> OutboundError {
    // Without the URL: it may carry a query an operator did not mean to log.
    OutboundError::Failed(e.without_url().to_string())
}

/// A resolver that drops every non-public address (unless allowed), and fails when none is left.
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is reachable on the public internet (the stable subset of the unstable
/// `IpAddr::is_global`).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking (RFC 2544)
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x64 && ip.segments()[1] == 0xff9b)) // NAT64, may reach private IPv4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(text.parse().unwrap()), "{text}");
        }
        for text in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(text.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn literal_private_targets_are_refused_before_connecting() {
        let outbound = Outbound::new(&OutboundSettings::default()).unwrap();
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "gopher://example.com/",
        ] {
            assert!(
                matches!(outbound.check_url(url), Err(OutboundError::Refused(_))),
                "{url}"
            );
        }
        assert!(outbound.check_url("https://example.com/jwks").is_ok());
    }
}
