//! `tokens.refresh_grace`: a client refreshing from several tabs at once presents the same
//! refresh token more than once. Within the grace each presentation by the same client, for the
//! same request, gets the response of the one rotation that happened — the same new access and
//! refresh token (as Hydra and Okta allow) — instead of being taken for a replay.
//!
//! The response is kept in the used token's row, sealed under the master key (AES-256-GCM, the
//! row's token hash as associated data, so a sealed answer moved to another row does not open):
//! never a token in the clear.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::master_key::MasterKey;
use crate::oauth::OAuthError;

/// What a refresh asked for: a retry gets the stored answer only when it asks the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// What is sealed: the request and the response it got.
#[derive(Deserialize)]
struct Answer {
    asked: Asked,
    body: Value,
}

#[derive(Serialize)]
struct AnswerRef<'a> {
    asked: &'a Asked,
    body: &'a Value,
}

fn aad(token_hash: &str) -> Vec<u8> {
    format!("sigil refresh successor {token_hash}").into_bytes()
}

/// The response of the rotation that spends `token_hash`, sealed for its row.
pub fn seal(
    master: &MasterKey,
    token_hash: &str,
    asked: &Asked,
    body: &Value,
) -> Result<Vec<u8>, OAuthError> {
    let plain = serde_json::to_vec(&AnswerRef { asked, body }).map_err(OAuthError::server_error)?;
    master
        .seal(&plain, &aad(token_hash))
        .map_err(OAuthError::server_error)
}

/// The stored response, if it was stored for the same request. One that no longer opens (the
/// master key was replaced since, `sigil keys rewrap`) is no answer either.
pub fn open(master: &MasterKey, token_hash: &str, sealed: &[u8], asked: &Asked) -> Option<Value> {
    let answer = master
        .open(sealed, &aad(token_hash))
        .map_err(|e| e.to_string())
        .and_then(|plain| serde_json::from_slice::<Answer>(&plain).map_err(|e| e.to_string()));
    match answer {
        Ok(answer) => (answer.asked == *asked).then_some(answer.body),
        Err(e) => {
            tracing::warn!(error = %e, "a refresh answer kept for the grace does not open");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_opens_only_for_its_row_and_its_request() {
        let master = MasterKey::generate();
        let asked = Asked {
            scope: None,
            resource: None,
        };
        let body = serde_json::json!({"access_token": "a", "refresh_token": "r"});
        let sealed = seal(&master, "hash-1", &asked, &body).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("access_token"), "stored sealed");
        assert_eq!(open(&master, "hash-1", &sealed, &asked), Some(body));
        let narrower = Asked {
            scope: Some("openid".into()),
            resource: None,
        };
        assert_eq!(open(&master, "hash-1", &sealed, &narrower), None);
        assert_eq!(
            open(&master, "hash-2", &sealed, &asked),
            None,
            "another row"
        );
        let other_key = MasterKey::generate();
        assert_eq!(open(&other_key, "hash-1", &sealed, &asked), None);
    }
}
