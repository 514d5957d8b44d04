//! `application/x-www-form-urlencoded` parameters (RFC 6749 §3.1, §3.2): a parameter sent
//! twice is an error, a parameter sent without a value is treated as omitted, and a parameter
//! longer than `http.max_param_bytes` is refused before anything reads it (DESIGN.md "Limits").

use std::collections::BTreeMap;

use super::OAuthError;

/// Serialized as a JSON object, as a pushed authorization request stores them.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `body` (a form body or a query string); no name or value, once decoded, may be
    /// longer than `max_param` bytes.
    pub fn parse(body: &[u8], max_param: usize) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if k.len() > max_param || v.len() > max_param {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is longer than {max_param} bytes"
                )));
            }
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

    pub fn insert(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }

    /// Takes `key` out, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
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
        assert!(Params::parse(b"a=1&a=2", 64).is_err());
        assert!(Params::parse(b"a=1&b=2", 64).is_ok());
    }

    #[test]
    fn empty_values_count_as_omitted() {
        let p = Params::parse(b"scope=&grant_type=x", 64).unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("grant_type"), Some("x"));
    }

    #[test]
    fn over_long_parameters_are_refused_by_their_decoded_length() {
        assert!(Params::parse(b"state=12345678", 8).is_ok());
        let e = Params::parse(b"state=123456789", 8).unwrap_err();
        assert!(e.to_string().contains("\"state\""), "{e}");
        assert!(Params::parse(b"123456789=x", 8).is_err(), "names too");
        // %41 is one byte once decoded.
        assert!(Params::parse(b"s=%41%41%41%41%41%41%41%41", 8).is_ok());
    }

    #[test]
    fn values_are_percent_decoded() {
        let p = Params::parse(b"scope=a+b%3Ac", 64).unwrap();
        assert_eq!(p.get("scope"), Some("a b:c"));
    }
}
