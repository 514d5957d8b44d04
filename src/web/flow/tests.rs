//! The sign-in and consent rules of `decide` and `session_meets`.

use super::*;
use crate::oauth::authorize_request::Prompt;
use crate::storage::users::UserRow;

fn request(prompt: Prompt, max_age: Option<i64>) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: "c".into(),
        redirect_uri: "https://c.example/cb".into(),
        response_mode: ResponseMode::Query,
        scope: "openid email".into(),
        state: None,
        nonce: None,
        code_challenge: None,
        prompt,
        max_age,
        login_hint: None,
        id_token_hint: None,
        resource: None,
        acr_values: Vec::new(),
        essential_acr: None,
        device: None,
    }
}

fn session(auth_time: i64) -> Session {
    Session {
        id_hash: "h".into(),
        sid: "s".into(),
        user: UserRow {
            id: "u1".into(),
            username: "alice".into(),
            email: None,
            email_verified: false,
            name: None,
            claims: "{}".into(),
            password_hash: String::new(),
            is_admin: false,
            disabled: false,
            tokens_valid_after: 0,
            created_at: 0,
            updated_at: 0,
        },
        auth_time,
        amr: vec!["pwd".into()],
        acr: "x".into(),
    }
}

fn situation(session: Option<&Session>) -> Situation<'_> {
    Situation {
        session,
        signed_in_sid: None,
        remembered_scope: Scope::parse("openid email profile").ok(),
        skip_consent: false,
        hint_sub: None,
        needed: Needed::Level(Acr::Pwd),
        now: 1000,
    }
}

#[test]
fn sign_in_rules() {
    let s = session(900);
    let none = Prompt {
        none: true,
        ..Prompt::default()
    };
    let login = Prompt {
        login: true,
        ..Prompt::default()
    };
    assert_eq!(
        decide(&request(Prompt::default(), None), &situation(None)),
        Ok(Next::Login)
    );
    assert_eq!(
        decide(&request(none.clone(), None), &situation(None))
            .unwrap_err()
            .code,
        ErrorCode::LoginRequired
    );
    assert_eq!(
        decide(&request(none, None), &situation(Some(&s))),
        Ok(Next::Issue)
    );
    assert_eq!(
        decide(&request(login.clone(), None), &situation(Some(&s))),
        Ok(Next::Login)
    );
    let mut fresh = situation(Some(&s));
    fresh.signed_in_sid = Some("s");
    assert_eq!(decide(&request(login, None), &fresh), Ok(Next::Issue));
    assert_eq!(
        decide(&request(Prompt::default(), Some(50)), &situation(Some(&s))),
        Ok(Next::Login)
    );
    assert_eq!(
        decide(&request(Prompt::default(), Some(100)), &situation(Some(&s))),
        Ok(Next::Issue)
    );
    let mut other = situation(Some(&s));
    other.hint_sub = Some("u2".into());
    assert_eq!(
        decide(&request(Prompt::default(), None), &other),
        Ok(Next::Login)
    );
    // Signing in during the flow as someone the hint does not name is no way around it.
    other.signed_in_sid = Some("s");
    assert_eq!(
        decide(&request(Prompt::default(), None), &other)
            .unwrap_err()
            .code,
        ErrorCode::LoginRequired
    );
    assert_eq!(
        session_meets(&request(Prompt::default(), None), &other),
        Err(Unmet::OtherUser)
    );
}

#[test]
fn consent_rules() {
    let s = session(900);
    let mut sit = situation(Some(&s));
    sit.remembered_scope = Scope::parse("openid").ok();
    assert_eq!(
        decide(&request(Prompt::default(), None), &sit),
        Ok(Next::Consent)
    );
    let none = Prompt {
        none: true,
        ..Prompt::default()
    };
    assert_eq!(
        decide(&request(none, None), &sit).unwrap_err().code,
        ErrorCode::ConsentRequired
    );
    sit.skip_consent = true;
    assert_eq!(
        decide(&request(Prompt::default(), None), &sit),
        Ok(Next::Issue)
    );
    let consent = Prompt {
        consent: true,
        ..Prompt::default()
    };
    let sit = situation(Some(&s));
    assert_eq!(decide(&request(consent, None), &sit), Ok(Next::Consent));
}
