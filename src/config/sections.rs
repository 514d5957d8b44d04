//! The sections of the configuration, one struct each, with their defaults.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::DurationSetting;
use crate::crypto::keys::SigningAlg;

/// Requests Sigil makes itself: client `jwks_uri` fetches and back-channel logout deliveries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// Allow targets on loopback, private, link-local and other non-public addresses (SSRF
    /// protection is on by default; tests and single-network deployments turn it off).
    pub allow_private_networks: bool,
    /// Connect-plus-response time limit of one outbound request.
    pub timeout: DurationSetting,
    /// Largest response body read (a `jwks_uri` document).
    pub max_response_bytes: usize,
    /// Attempts per back-channel logout delivery (the first one included).
    pub backchannel_attempts: u32,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            timeout: DurationSetting::from_secs(5),
            max_response_bytes: 64 * 1024,
            backchannel_attempts: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    /// How long a node may reuse a client it loaded (0s: read the database every time). New
    /// clients are always found at once; changes and removals are seen within this time.
    pub cache_ttl: DurationSetting,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            cache_ttl: DurationSetting::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSettings {
    /// Password checks per account and per client address, failed or still in flight, within
    /// `window` before further attempts get 429.
    pub max_failures: u32,
    /// The window failures are counted in; the lockout starts at one window and doubles.
    pub window: DurationSetting,
    /// The longest a lockout lasts, however often it doubled.
    pub max_lockout: DurationSetting,
    /// Password checks queued or running at once (0: 32 per core); beyond it 503.
    pub max_pending: u32,
    /// How long a sign-in may take: an authorization request waits this long for the person
    /// to sign in and consent.
    pub request_ttl: DurationSetting,
    /// Authorization requests one client address may have waiting at once; beyond it the
    /// oldest of that address's give way.
    pub max_parked_per_address: u32,
    /// How long every answer of the login form but a sign-in (a wrong password, 429 locked,
    /// 503 busy, a stale form) waits before it goes out: a flood that waits for its answers is
    /// slowed to one attempt per connection and delay. At most 10 s; `0s` turns it off.
    pub refusal_delay: DurationSetting,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: DurationSetting::from_secs(15 * 60),
            max_lockout: DurationSetting::from_secs(3600),
            max_pending: 0,
            request_ttl: DurationSetting::from_secs(15 * 60),
            max_parked_per_address: 100,
            refusal_delay: DurationSetting::from_secs(1),
        }
    }
}

impl LoginSettings {
    /// `max_pending`, with 0 read as 32 per core.
    pub fn pending_limit(&self) -> usize {
        match self.max_pending {
            0 => 32 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }
}

/// The background task that deletes what has expired, on every node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceSettings {
    /// How often expired rows are purged.
    pub interval: DurationSetting,
    /// Rows deleted per statement (each batch is its own short transaction).
    pub batch_size: u32,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            interval: DurationSetting::from_secs(60),
            // SQLite holds its write lock for a batch: about 30–90 ms for 500 rows here.
            batch_size: 500,
        }
    }
}

/// Pushed authorization requests (RFC 9126).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParSettings {
    /// Every client must push its authorization requests (`/authorize` takes only a
    /// `request_uri` from `/par`), as if each had `require_pushed_authorization_requests`.
    pub required: bool,
}

/// Dynamic client registration (RFC 7591) and its management (RFC 7592).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// No `/register`: it answers 404 and discovery does not name it.
    #[default]
    Off,
    /// `/register` needs an initial access token from `sigil client initial-token`.
    Token,
    /// Anyone may register, within `max_per_address_per_hour` and `max_clients`.
    Open,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationSettings {
    pub mode: RegistrationMode,
    /// Registrations one client address may make per hour in `open` mode; beyond it 429.
    pub max_per_address_per_hour: u32,
    /// Dynamically registered clients there may be at once; beyond it 503.
    pub max_clients: u32,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Off,
            max_per_address_per_hour: 10,
            max_clients: 10_000,
        }
    }
}

/// The device authorization grant (RFC 8628).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSettings {
    /// The polling `interval` a device is given (RFC 8628 §3.2); `slow_down` adds 5 s to it.
    pub interval: DurationSetting,
    /// How long a device code and its user code live (`expires_in`).
    pub lifetime: DurationSetting,
    /// Device authorizations one client may have live at once; beyond it 503.
    pub max_pending_per_client: u32,
    /// Device authorizations live at once, all clients together; beyond it 503.
    pub max_pending: u32,
    /// A public client's device authorizations one client address may have waiting (anyone
    /// can start one for a public client); beyond it the oldest of that address's give way.
    pub max_pending_per_address: u32,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            interval: DurationSetting::from_secs(5),
            lifetime: DurationSetting::from_secs(600),
            max_pending_per_client: 100,
            max_pending: 10_000,
            max_pending_per_address: 10,
        }
    }
}

/// The stored audit log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Events older than this are purged by the maintenance task.
    pub retention: DurationSetting,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: DurationSetting::from_secs(90 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_timeout: DurationSetting,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: DurationSetting,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout: DurationSetting::from_secs(8 * 3600),
            lifetime: DurationSetting::from_secs(7 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Access token lifetime (RFC 9068 tokens; 5–15 minutes).
    pub access_ttl: DurationSetting,
    /// Algorithm of the JWT access tokens: RS256, PS256, ES256 or EdDSA.
    pub access_token_alg: SigningAlg,
    /// The longest lifetime of any token Sigil signs; a retiring key stays published this long.
    pub id_token_ttl: DurationSetting,
    /// Allowed clock difference with relying parties, added to every retirement delay.
    pub clock_skew: DurationSetting,
    /// Refresh token lifetime (each use rotates the token and restarts it).
    pub refresh_ttl: DurationSetting,
    /// How often a node checks whether a token was revoked elsewhere (on another node or with
    /// the CLI); it drops its cached introspection answers when so. A revocation made on a node
    /// is seen there at once.
    pub revocation_poll: DurationSetting,
    /// How long after a refresh the old refresh token still answers with the same new tokens
    /// (a client refreshing from several tabs at once); 0s: a second use is a replay.
    pub refresh_grace: DurationSetting,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_ttl: DurationSetting::from_secs(600),
            access_token_alg: SigningAlg::RS256,
            id_token_ttl: DurationSetting::from_secs(3600),
            clock_skew: DurationSetting::from_secs(60),
            refresh_ttl: DurationSetting::from_secs(30 * 86_400),
            revocation_poll: DurationSetting::from_secs(1),
            refresh_grace: DurationSetting::from_secs(0),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: DurationSetting,
    /// How often a node reloads the signing keys from the database.
    pub refresh_interval: DurationSetting,
    /// How often each algorithm's key is rotated.
    pub rotation_period: DurationSetting,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            jwks_max_age: DurationSetting::from_secs(300),
            refresh_interval: DurationSetting::from_secs(10),
            rotation_period: DurationSetting::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections in the pool (SQLite readers share the file in WAL mode).
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock before failing.
    pub busy_timeout: DurationSetting,
    /// Connections the server keeps open while idle (the pool reopens them in the background).
    pub min_idle: u32,
    /// How long a request waits for a connection before it is answered 503 (the database is
    /// down or every connection is busy).
    pub acquire_timeout: DurationSetting,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: DurationSetting::from_secs(5),
            min_idle: 1,
            acquire_timeout: DurationSetting::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sigil=debug,actix_web=info`; `RUST_LOG` wins.
    pub level: String,
    /// One line per request (target `sigil::access`) and request ids; `false` leaves both out.
    pub access: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
            access: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body Sigil reads, anywhere.
    pub max_body_bytes: usize,
    /// Longest single parameter (query or form) accepted.
    pub max_param_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: DurationSetting,
    /// Addresses (CIDRs or single addresses) of the proxies in front of Sigil: only from them
    /// are `Forwarded` and `X-Forwarded-For` / `-Proto` read.
    pub trusted_proxies: Vec<Cidr>,
    /// Deadline for a request's headers to arrive.
    pub header_timeout: DurationSetting,
    /// Deadline for a whole request (its body included) to be read and answered.
    pub request_timeout: DurationSetting,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            max_body_bytes: 16 * 1024,
            max_param_bytes: 4 * 1024,
            shutdown_timeout: DurationSetting::from_secs(10),
            trusted_proxies: Vec::new(),
            header_timeout: DurationSetting::from_secs(5),
            request_timeout: DurationSetting::from_secs(30),
        }
    }
}

/// An address block, written `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an address or CIDR block (10.0.0.0/8, ::1/128)");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Cidr;

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.2.3".parse().unwrap()),
            "v4-mapped"
        );
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::9".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}

/// DPoP (RFC 9449).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopSettings {
    /// Proof ids (`jti`) one node remembers at once, each for the two minutes its proof could
    /// be accepted (about 40 bytes each); beyond it proofs are refused with 503 rather than
    /// accepted without the replay check.
    pub max_jtis: usize,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            max_jtis: 1_000_000,
        }
    }
}

/// Where `/metrics` is served (DESIGN.md "Operations").
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// An address of its own for `/metrics` (plain HTTP, e.g. `127.0.0.1:9464`; port 0 picks a
    /// free one); the public listener then answers 404 there. Unset: `/metrics` is on the
    /// public listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<std::net::SocketAddr>,
}
