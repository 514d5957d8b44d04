//! Typed settings: `sigil.toml` (or `--config` / `SIGIL_CONFIG`), then `SIGIL_*` environment
//! variables with `__` for nesting. Unknown keys and invalid values fail at start, before any
//! port is bound.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

mod sections;

pub use sections::*;

pub const DEFAULT_CONFIG_FILE: &str = "sigil.toml";

/// Access-token lifetimes Sigil accepts, in seconds (5–15 minutes), for `tokens.access_ttl` and
/// a resource server's `access_token_ttl`.
pub const ACCESS_TTL_RANGE: std::ops::RangeInclusive<u64> = 300..=900;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier (OIDC Core §2); every URL Sigil publishes starts with it.
    pub issuer: Url,
    /// The address the HTTP listener binds; port 0 picks a free one.
    pub bind: String,
    /// `sqlite://PATH` (embedded, the default) or `postgres://…`.
    pub database_url: Secret,
    /// The base64 master key (32 bytes) that encrypts private keys and client secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<Secret>,
    /// A file holding the base64 master key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub tokens: TokenSettings,
    #[serde(default)]
    pub keys: KeySettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub login: LoginSettings,
    #[serde(default)]
    pub sessions: SessionSettings,
    #[serde(default)]
    pub clients: ClientSettings,
    #[serde(default)]
    pub outbound: OutboundSettings,
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub par: ParSettings,
    #[serde(default)]
    pub registration: RegistrationSettings,
    pub dpop: DpopSettings,
    pub device: DeviceSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: Url::parse("http://127.0.0.1:8080").expect("static URL"),
            bind: "127.0.0.1:8080".into(),
            database_url: Secret::new("sqlite://sigil.db"),
            master_key: None,
            master_key_file: None,
            tls: TlsSettings::default(),
            tokens: TokenSettings::default(),
            keys: KeySettings::default(),
            database: DatabaseSettings::default(),
            log: LogSettings::default(),
            http: HttpSettings::default(),
            login: LoginSettings::default(),
            sessions: SessionSettings::default(),
            clients: ClientSettings::default(),
            outbound: OutboundSettings::default(),
            maintenance: MaintenanceSettings::default(),
            audit: AuditSettings::default(),
            par: ParSettings::default(),
            registration: RegistrationSettings::default(),
            dpop: DpopSettings::default(),
            device: DeviceSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Settings as loaded, with the environment variables that named no setting.
pub struct Loaded {
    pub settings: Settings,
    /// `SIGIL_*` variables ignored because they name no setting (container platforms inject
    /// `SIGIL_PORT`, `SIGIL_SERVICE_HOST`, ... for a service named `sigil`): names only.
    pub ignored_env: Vec<String>,
}

impl Settings {
    /// Defaults, then the file (when given, or `sigil.toml` when present), then `SIGIL_*`.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(Self::load_reporting(explicit_file)?.settings)
    }

    /// [`Settings::load`], telling which `SIGIL_*` variables it ignored. Unknown keys in the
    /// file stay an error; an unknown key that only the environment sets is dropped.
    pub fn load_reporting(explicit_file: Option<&Path>) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match explicit_file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        // SIGIL_CONFIG names the file, SIGIL_COMMIT is a build input (build.rs; cargo also sets
        // it for the processes `cargo test` runs) and SIGIL_TEST_* belong to the test suite:
        // none of them is a key.
        let env = |ignored: Vec<String>| {
            Env::prefixed("SIGIL_").split("__").filter(move |key| {
                let key = key.as_str().to_ascii_lowercase();
                key != "config"
                    && key != "commit"
                    && !key.starts_with("test_")
                    && !ignored.contains(&key)
            })
        };
        let given: Vec<String> = env(Vec::new())
            .iter()
            .map(|(key, _)| key.as_str().to_ascii_lowercase())
            .collect();
        let mut ignored: Vec<String> = Vec::new();
        // Each round drops the variables under the one unknown key serde reports, so this
        // ends within one round per variable.
        let settings: Settings = loop {
            let error = match figment.clone().merge(env(ignored.clone())).extract() {
                Ok(settings) => break settings,
                Err(e) => e,
            };
            let figment::error::Kind::UnknownField(field, _) = &error.kind else {
                return Err(Box::new(error).into());
            };
            // figment's path ends with the unknown field itself.
            let mut path = error.path.clone();
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            let unknown = path.join(".").to_ascii_lowercase();
            let under: Vec<String> = given
                .iter()
                .filter(|k| **k == unknown || k.starts_with(&format!("{unknown}.")))
                .filter(|k| !ignored.contains(k))
                .cloned()
                .collect();
            if under.is_empty() {
                // The file's own key (or nothing this loop can drop): the error it is.
                return Err(Box::new(error).into());
            }
            ignored.extend(under);
        };
        settings.validate()?;
        settings.validate_floors()?;
        let ignored_env = ignored
            .iter()
            .map(|k| format!("SIGIL_{}", k.replace('.', "__").to_ascii_uppercase()))
            .collect();
        Ok(Loaded {
            settings,
            ignored_env,
        })
    }

    /// Lower bounds that guard a configuration file or the environment against a slip (`30s`
    /// written for `30d`), checked when settings are loaded. Settings built in code, such as
    /// the test suite's runs with rotation periods of seconds, are held to `validate()` alone,
    /// which keeps every rule that client safety depends on.
    fn validate_floors(&self) -> Result<(), ConfigError> {
        if self.keys.rotation_period.as_secs() < 3600 {
            return Err(ConfigError::Invalid(
                "keys.rotation_period must be at least 1h".into(),
            ));
        }
        Ok(())
    }

    /// Cross-field rules, checked before anything is opened or bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !matches!(self.issuer.scheme(), "https" | "http") {
            return invalid(format!("issuer {} must be an http(s) URL", self.issuer));
        }
        // OIDC Discovery §3: the issuer has no query or fragment.
        if self.issuer.query().is_some() || self.issuer.fragment().is_some() {
            return invalid("issuer must not have a query or fragment".into());
        }
        if self.issuer.scheme() == "http" && !is_loopback_host(&self.issuer) {
            return invalid(format!(
                "issuer {} must use https (plain http is allowed only on loopback)",
                self.issuer
            ));
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return invalid("set master_key or master_key_file, not both".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return invalid("tls.cert and tls.key go together".into());
        }
        let access = self.tokens.access_ttl.as_secs();
        if !ACCESS_TTL_RANGE.contains(&access) {
            return invalid(format!(
                "tokens.access_ttl must be between 5m and 15m, not {}",
                self.tokens.access_ttl
            ));
        }
        if self.tokens.id_token_ttl.as_secs() < 60 {
            return invalid("tokens.id_token_ttl must be at least 1m".into());
        }
        if self.tokens.revocation_poll.0.is_zero() || self.tokens.revocation_poll.as_secs() > 60 {
            return invalid("tokens.revocation_poll must be above zero and at most 60s".into());
        }
        if self.keys.refresh_interval.0.is_zero() {
            return invalid("keys.refresh_interval must be above zero".into());
        }
        let max_age = self.keys.jwks_max_age;
        // A next key is published for 2 × max-age before it signs: one max-age for a node to
        // load it (at most one refresh interval), one for every client's cached JWKS to expire.
        if self.keys.refresh_interval > max_age {
            return invalid(format!(
                "keys.refresh_interval ({}) must not exceed keys.jwks_max_age ({}): a node that \
                 reloads keys less often than clients refetch the JWKS could hand out a JWKS \
                 without the key another node signs with",
                self.keys.refresh_interval, max_age
            ));
        }
        if self.keys.rotation_period.0 < 2 * max_age.0 {
            return invalid(format!(
                "keys.rotation_period ({}) must be at least 2 × keys.jwks_max_age ({}): a next \
                 key is published that long before the schedule may activate it",
                self.keys.rotation_period, max_age
            ));
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1".into());
        }
        if self.login.max_failures == 0 || self.login.window.as_secs() == 0 {
            return invalid("login.max_failures and login.window must be above zero".into());
        }
        if self.sessions.idle_timeout.as_secs() < 60
            || self.sessions.lifetime < self.sessions.idle_timeout
        {
            return invalid(
                "sessions.idle_timeout must be at least 1m and at most sessions.lifetime".into(),
            );
        }
        if self.tokens.refresh_ttl.as_secs() < 300 {
            return invalid("tokens.refresh_ttl must be at least 5m".into());
        }
        if self.login.request_ttl.as_secs() < 60 {
            return invalid("login.request_ttl must be at least 1m".into());
        }
        if self.login.refusal_delay.as_secs() > 10 {
            return invalid("login.refusal_delay must be at most 10s".into());
        }
        if self.login.max_parked_per_address == 0 {
            return invalid("login.max_parked_per_address must be at least 1".into());
        }
        if self.http.max_body_bytes < 1024 {
            return invalid("http.max_body_bytes must be at least 1024".into());
        }
        if self.http.max_param_bytes < 256 || self.http.max_param_bytes > self.http.max_body_bytes {
            return invalid(
                "http.max_param_bytes must be at least 256 and at most http.max_body_bytes".into(),
            );
        }
        if self.http.header_timeout.0.is_zero() || self.http.request_timeout.0.is_zero() {
            return invalid(
                "http.header_timeout and http.request_timeout must be above zero".into(),
            );
        }
        if self.login.max_lockout < self.login.window {
            return invalid("login.max_lockout must be at least login.window".into());
        }
        if self.maintenance.interval.0.is_zero() || self.maintenance.batch_size == 0 {
            return invalid(
                "maintenance.interval and maintenance.batch_size must be above zero".into(),
            );
        }
        if self.audit.retention.as_secs() < 3600 {
            return invalid("audit.retention must be at least 1h".into());
        }
        if self.tokens.refresh_grace.as_secs() > 300 {
            return invalid("tokens.refresh_grace must be at most 5m".into());
        }
        if self.registration.max_per_address_per_hour == 0 || self.registration.max_clients == 0 {
            return invalid(
                "registration.max_per_address_per_hour and registration.max_clients must be \
                 at least 1"
                    .into(),
            );
        }
        if self.database.acquire_timeout.0.is_zero() {
            return invalid("database.acquire_timeout must be above zero".into());
        }
        let device = &self.device;
        if device.interval.as_secs() == 0 || device.lifetime.as_secs() < 60 {
            return invalid(
                "device.interval must be at least 1s and device.lifetime at least 1m".into(),
            );
        }
        if device.max_pending_per_client == 0
            || device.max_pending == 0
            || device.max_pending_per_address == 0
        {
            return invalid("device.max_pending* must be at least 1".into());
        }
        crate::storage::DatabaseUrl::parse(self.database_url.expose())
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The issuer without a trailing slash, as it appears in `iss` claims.
    /// The name authenticator apps show for Sigil's TOTP codes: the issuer's host.
    pub fn totp_issuer(&self) -> String {
        self.issuer.host_str().unwrap_or("Sigil").to_string()
    }

    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// True when the issuer is HTTPS: cookies get `Secure` and the `__Host-` prefix.
    pub fn is_https(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// An absolute URL under the issuer for one of Sigil's paths.
    pub fn endpoint_url(&self, path: &str) -> String {
        format!("{}{}", self.issuer_str(), path)
    }

    /// The longest lifetime of any token Sigil signs, plus the allowed clock skew: how long a
    /// key must stay published after it stops signing. Access tokens for a resource server may
    /// live up to the top of the accepted range whatever `tokens.access_ttl` says.
    pub fn retirement_delay(&self) -> Duration {
        let longest_access = Duration::from_secs(*ACCESS_TTL_RANGE.end());
        longest_access
            .max(self.tokens.access_ttl.0)
            .max(self.tokens.id_token_ttl.0)
            + self.tokens.clock_skew.0
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A duration written `90s`, `10m`, `12h` or `30d`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSetting(pub Duration);

impl DurationSetting {
    /// The longest duration a setting takes (100 years of 365.25 days, as `humantime` reads
    /// `y`). Settings are added to one another and
    /// to the clock's seconds (`retirement_delay`, `2 × jwks_max_age`, `now + ttl`); a bound
    /// keeps that arithmetic from overflowing, where `18446744073709551615s` used to panic.
    pub const MAX: Duration = Duration::from_secs(100 * 31_557_600);

    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for DurationSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        let ms = self.0.subsec_millis();
        match () {
            _ if ms != 0 => write!(f, "{}ms", self.0.as_millis()),
            _ if s != 0 && s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s != 0 && s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s != 0 && s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl fmt::Debug for DurationSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for DurationSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. 90s, 10m, 12h, 30d"))?;
        if d > Self::MAX {
            return Err(format!("duration {s:?} is longer than 100 years"));
        }
        Ok(Self(d))
    }
}

impl Serialize for DurationSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A configuration value that must not appear in logs or `Debug` output.
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (text, secs) in [
            ("90s", 90),
            ("10m", 600),
            ("12h", 43_200),
            ("30d", 2_592_000),
        ] {
            let d: DurationSetting = text.parse().unwrap();
            assert_eq!(d.as_secs(), secs);
            assert_eq!(d.to_string(), text);
        }
        assert!("ten minutes".parse::<DurationSetting>().is_err());
    }

    #[test]
    fn durations_that_would_overflow_the_clock_are_refused() {
        // Found by tests/api/properties/config.rs: `tokens.id_token_ttl =
        // "18446744073709551615s"` loaded, and `retirement_delay` then panicked adding the
        // clock skew.
        for text in ["101y", "40000d", "18446744073709551615s"] {
            let e = text.parse::<DurationSetting>().unwrap_err();
            assert!(e.contains("longer than 100 years"), "{text}: {e}");
        }
        assert_eq!(
            "100y".parse::<DurationSetting>().unwrap().0,
            DurationSetting::MAX
        );
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn plain_http_issuer_is_refused_off_loopback() {
        let mut s = Settings {
            issuer: Url::parse("http://id.example.com").unwrap(),
            ..Settings::default()
        };
        assert!(s.validate().is_err());
        s.issuer = Url::parse("https://id.example.com").unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn key_periods_leave_room_for_pre_publication() {
        let mut s = Settings::default();
        s.keys.rotation_period = DurationSetting::from_secs(599);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("2 × keys.jwks_max_age"), "{e}");
        s.keys.rotation_period = DurationSetting::from_secs(600);
        s.validate().unwrap();
        s.keys.refresh_interval = DurationSetting::from_secs(301);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("keys.refresh_interval"), "{e}");
    }

    #[test]
    fn loaded_settings_keep_the_one_hour_rotation_floor() {
        let file = std::env::temp_dir().join(format!("sigil-floor-{}.toml", std::process::id()));
        std::fs::write(&file, "[keys]\nrotation_period = \"30m\"\n").unwrap();
        let loaded = Settings::load(Some(&file));
        std::fs::remove_file(&file).unwrap();
        let e = loaded.unwrap_err().to_string();
        assert!(e.contains("at least 1h"), "{e}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
