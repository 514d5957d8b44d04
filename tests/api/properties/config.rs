//! The configuration file (`Settings::load`: TOML through figment, then the checks of
//! `validate`): any text loads or is refused with a message, and settings that load can be used.

use std::io::Write;

use proptest::prelude::*;

use sigil::config::{DurationSetting, Settings};

use super::{bytes, check, hostile_text};

/// Every key of the file, with a valid value (DESIGN.md "Contract", README's reference).
const VALID: &[(&str, &str, &str)] = &[
    ("", "issuer", r#""https://id.example""#),
    ("", "bind", r#""127.0.0.1:0""#),
    ("", "database_url", r#""sqlite://sigil.db""#),
    ("tokens", "access_ttl", r#""10m""#),
    ("tokens", "access_token_alg", r#""ES256""#),
    ("tokens", "id_token_ttl", r#""1h""#),
    ("tokens", "clock_skew", r#""60s""#),
    ("tokens", "refresh_ttl", r#""30d""#),
    ("tokens", "revocation_poll", r#""1s""#),
    ("tokens", "refresh_grace", r#""0s""#),
    ("keys", "jwks_max_age", r#""5m""#),
    ("keys", "refresh_interval", r#""10s""#),
    ("keys", "rotation_period", r#""30d""#),
    ("database", "max_connections", "8"),
    ("database", "busy_timeout", r#""5s""#),
    ("database", "acquire_timeout", r#""2s""#),
    ("http", "workers", "2"),
    ("http", "max_body_bytes", "16384"),
    ("http", "max_param_bytes", "4096"),
    ("http", "trusted_proxies", r#"["10.0.0.0/8", "::1"]"#),
    ("http", "header_timeout", r#""5s""#),
    ("http", "request_timeout", r#""30s""#),
    ("login", "max_failures", "5"),
    ("login", "window", r#""15m""#),
    ("login", "max_lockout", r#""1h""#),
    ("login", "max_pending", "0"),
    ("login", "request_ttl", r#""15m""#),
    ("sessions", "idle_timeout", r#""8h""#),
    ("sessions", "lifetime", r#""7d""#),
    ("clients", "cache_ttl", r#""5s""#),
    ("outbound", "timeout", r#""5s""#),
    ("outbound", "max_response_bytes", "65536"),
    ("maintenance", "interval", r#""1m""#),
    ("maintenance", "batch_size", "1000"),
    ("log", "level", r#""info""#),
];

/// TOML values of every kind, and the durations and numbers that overflow arithmetic.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            r#""584942417355y""#, // u64::MAX seconds
            r#""292277024626y""#, // i64::MAX seconds
            r#""18446744073709551615s""#,
            r#""18446744073709551616s""#,
            r#""0s""#,
            r#""1ns""#,
            r#""-1s""#,
            r#""1h 1ns""#,
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775808",
            "-1",
            "0",
            "1e309",
            "nan",
            "inf",
            "true",
            "[]",
            "{}",
            r#"["0.0.0.0/0", "::/0"]"#,
            r#"["10.0.0.0/33"]"#,
            r#""https://id.example?x#y""#,
            r#""http://evil.example""#,
            r#""postgres://""#,
        ])
        .prop_map(str::to_string),
        hostile_text().prop_map(|t| toml_string(&t)),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{1,22}(ns|us|ms|s|m|h|d|w|y)".prop_map(|d| format!("\"{d}\"")),
    ]
}

/// A TOML basic string holding `text` (control characters escaped).
fn toml_string(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The file of `values` (section, key, value): top-level keys first, then each section once.
fn render(values: &[(&str, String, String)]) -> String {
    let mut text = String::new();
    let mut sections: Vec<&str> = Vec::new();
    for (section, key, value) in values {
        if section.is_empty() {
            text.push_str(&format!("{key} = {value}\n"));
        } else if !sections.contains(section) {
            sections.push(section);
        }
    }
    for s in sections {
        text.push_str(&format!("[{s}]\n"));
        for (_, key, value) in values.iter().filter(|e| e.0 == s) {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

fn valid_values() -> Vec<(&'static str, String, String)> {
    VALID
        .iter()
        .map(|(s, k, v)| (*s, k.to_string(), v.to_string()))
        .collect()
}

/// The valid file with one to three values replaced (or a key added under an unknown name).
fn mutated_file() -> impl Strategy<Value = String> {
    let change = (0..VALID.len() + 1, toml_value());
    proptest::collection::vec(change, 1..4).prop_map(|changes| {
        let mut values = valid_values();
        for (i, value) in changes {
            match values.get_mut(i) {
                Some(entry) => entry.2 = value,
                None => values.push(("http", "unknown".into(), value)),
            }
        }
        render(&values)
    })
}

/// Loads `text` as the configuration file.
fn load(text: impl AsRef<[u8]>) -> Result<Settings, String> {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_ref()).expect("write");
    Settings::load(Some(file.path())).map_err(|e| e.to_string())
}

/// Settings that loaded are used without panic: every derived value the server computes at
/// start (retirement delay, pending limit, URLs, durations printed and added to the clock).
fn usable(s: &Settings) {
    let _ = s.retirement_delay();
    let _ = s.login.pending_limit();
    let _ = s.endpoint_url("/token");
    let (t, k, h, l) = (&s.tokens, &s.keys, &s.http, &s.login);
    let durations: [DurationSetting; 20] = [
        t.access_ttl,
        t.id_token_ttl,
        t.clock_skew,
        t.refresh_ttl,
        t.revocation_poll,
        t.refresh_grace,
        k.jwks_max_age,
        k.refresh_interval,
        k.rotation_period,
        s.database.busy_timeout,
        s.database.acquire_timeout,
        h.header_timeout,
        h.request_timeout,
        l.window,
        l.max_lockout,
        l.request_ttl,
        s.sessions.idle_timeout,
        s.sessions.lifetime,
        s.clients.cache_ttl,
        s.maintenance.interval,
    ];
    for d in durations {
        let _ = d.to_string();
        let secs = i64::try_from(d.as_secs()).expect("a duration fits the clock's seconds");
        assert!(
            secs.checked_add(4_102_444_800).is_some(),
            "now + {d} overflows"
        );
    }
}

/// Any bytes, and a valid file with values replaced by any TOML value, load (and are usable)
/// or are refused with an error; deep nesting is refused without overflow.
#[test]
fn any_configuration_file_loads_usable_or_is_refused() {
    let deep = (1..20_000usize).prop_map(|depth| {
        format!(
            "[http]\nworkers = {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    });
    check("Settings::load (any bytes)", bytes(2_000), |text| {
        if let Ok(settings) = load(&text) {
            usable(&settings);
        }
        Ok(())
    });
    let text = prop_oneof![1 => deep, 6 => mutated_file()];
    check("Settings::load", text, |text| {
        if let Ok(settings) = load(&text) {
            usable(&settings);
        }
        Ok(())
    });
}

/// The untouched reference file loads: the mutations above start from a valid file.
#[test]
fn the_reference_file_loads() {
    let settings = load(render(&valid_values())).expect("the reference file loads");
    usable(&settings);
}

/// Regression: a duration of `u64::MAX` seconds (which humantime reads) loaded, and the key schedule's
/// `retirement_delay` (and `2 × keys.jwks_max_age` in the checks) then panicked on overflow.
#[test]
fn durations_that_overflow_the_clock_are_refused_at_load() {
    for (section, key) in [
        ("tokens", "id_token_ttl"),
        ("tokens", "clock_skew"),
        ("keys", "jwks_max_age"),
    ] {
        let mut values = valid_values();
        let entry = values
            .iter_mut()
            .find(|e| e.0 == section && e.1 == key)
            .unwrap();
        entry.2 = r#""18446744073709551615s""#.into();
        let e = load(render(&values)).unwrap_err();
        assert!(e.contains("longer than 100 years"), "{section}.{key}: {e}");
    }
}
