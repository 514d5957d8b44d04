//! `sigil config check`: the configuration as `serve` would load it (file, then `SIGIL_*`),
//! validated, printed with every secret redacted. An invalid one never gets here: loading it
//! fails first, with the error and status 2.

use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use super::UsageError;
use crate::config::Settings;
use crate::crypto::master_key::MasterKey;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective settings, secrets redacted.
    Check {
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Toml,
    Json,
}

pub const REDACTED: &str = "[redacted]";

pub fn run(cmd: ConfigCommand, settings: &Settings) -> anyhow::Result<()> {
    let ConfigCommand::Check { format } = cmd;
    if let Some(key) = &settings.master_key {
        MasterKey::from_base64(key.expose())
            .map_err(|e| UsageError(format!("configuration: master_key: {e}")))?;
    }
    let effective = redacted(settings)?;
    match format {
        Format::Json => super::print_json(&effective),
        Format::Toml => print!("{}", toml::to_string(&toml::Value::try_from(effective)?)?),
    }
    Ok(())
}

/// The settings as JSON with secrets replaced: `master_key`, the password in `database_url`
/// (in its user part or a `password` parameter), and any value under a name that says
/// `secret` or `password`. Unset options are left out (TOML has no null).
pub fn redacted(settings: &Settings) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(settings)?;
    redact(&mut value);
    if let Some(url) = value.get_mut("database_url") {
        *url = Value::String(redact_url(settings.database_url.expose()));
    }
    Ok(value)
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for (key, v) in map.iter_mut() {
                let secret =
                    key == "master_key" || key.contains("secret") || key.contains("password");
                if secret && !v.is_object() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `postgres://sigil:[redacted]@db/sigil`; an unparsable URL entirely.
fn redact_url(raw: &str) -> String {
    const MARK: &str = "SIGILREDACTEDPASSWORD";
    let Ok(mut url) = url::Url::parse(raw) else {
        return REDACTED.into();
    };
    if url.password().is_some() && url.set_password(Some(MARK)).is_err() {
        return REDACTED.into();
    }
    if url.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    MARK.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string().replace(MARK, REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://sigil:hunter2@db:5432/sigil"),
            "postgres://sigil:[redacted]@db:5432/sigil"
        );
        assert_eq!(
            redact_url("postgres://db/sigil?user=sigil&password=hunter2&sslmode=require"),
            "postgres://db/sigil?user=sigil&password=[redacted]&sslmode=require"
        );
        assert_eq!(redact_url("sqlite://sigil.db"), "sqlite://sigil.db");
    }
}
