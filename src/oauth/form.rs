//! `application/x-www-form-urlencoded` parameters (RFC 6749 §3.1, §3.2): a parameter sent
//! twice is an error, and a parameter sent without a value is treated as omitted.

use std::collections::BTreeMap;

use super::OAuthError;

#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if map.contains_key(k.as_ref()) && k == "resource" {
                // RFC 8707 §2: Sigil issues a token for one resource at a time.
                return Err(OAuthError::new(
                    super::ErrorCode::InvalidTarget,
                    "only one resource may be requested at a time",
                ));
            }
            if map.contains_key(k.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k:?} is repeated"
                )));
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        // RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were
        // omitted from the request."
        map.retain(|_, v| !v.is_empty());
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &'static str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("{key} is required")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        assert!(Params::parse(b"a=1&b=2").is_ok());
    }

    #[test]
    fn empty_values_count_as_omitted() {
        let p = Params::parse(b"scope=&grant_type=x").unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("grant_type"), Some("x"));
    }

    #[test]
    fn values_are_percent_decoded() {
        let p = Params::parse(b"scope=a+b%3Ac").unwrap();
        assert_eq!(p.get("scope"), Some("a b:c"));
    }
}
