use super::*;

fn parse(json: &str) -> Result<ClientMetadata, OAuthError> {
    ClientMetadata::from_json(json.as_bytes())
}

#[test]
fn defaults_follow_rfc7591() {
    let m = parse(r#"{"redirect_uris":["https://app.example/cb"],"unknown":1}"#).unwrap();
    assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
    assert_eq!(m.response_types, vec!["code"]);
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(m.id_token_signed_response_alg, "RS256");
}

#[test]
fn redirect_uris_must_be_absolute_without_fragment() {
    for uri in [
        "/cb",
        "https://app.example/cb#x",
        "javascript:alert(1)",
        "cb",
    ] {
        let err = parse(&format!(r#"{{"redirect_uris":["{uri}"]}}"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRedirectUri, "{uri}");
    }
    let err = parse(r#"{}"#).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRedirectUri);
}

#[test]
fn unknown_grants_and_methods_are_refused() {
    assert!(parse(r#"{"grant_types":["password"]}"#).is_err());
    assert!(parse(
        r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"magic"}"#
    )
    .is_err());
    assert!(
        parse(r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#)
            .is_err()
    );
    assert!(parse(r#"{"grant_types":["client_credentials"]}"#).is_ok());
}

#[test]
fn jwks_must_hold_public_keys() {
    let cc = r#""grant_types":["client_credentials"]"#;
    assert!(parse(&format!(r#"{{{cc},"jwks":{{"keys":[{{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}]}}}}"#)).is_ok());
    assert!(parse(&format!(
        r#"{{{cc},"jwks":{{"keys":[{{"kty":"oct","k":"AAAA"}}]}}}}"#
    ))
    .is_err());
    assert!(parse(&format!(r#"{{{cc},"jwks":{{"nokeys":[]}}}}"#)).is_err());
    assert!(parse(&format!(r#"{{{cc},"jwks":{{"keys":[{{"kty":"RSA"}}]}}}}"#)).is_err());
}

#[test]
fn jwt_methods_pin_their_algorithms_and_need_keys() {
    let cc = r#""grant_types":["client_credentials"]"#;
    let ec = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let with = |rest: &str| parse(&format!("{{{cc},{rest}}}"));
    let m = with(r#""token_endpoint_auth_method":"client_secret_jwt""#).unwrap();
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretJwt);
    assert!(with(r#""token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS256""#).is_ok());
    for alg in ["RS256", "ES256", "none", "HS512"] {
        let err = with(&format!(r#""token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"{alg}""#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{alg}");
    }
    // private_key_jwt: keys required, usable for the pinned algorithm.
    assert!(with(r#""token_endpoint_auth_method":"private_key_jwt""#).is_err());
    assert!(with(&format!(
        r#""token_endpoint_auth_method":"private_key_jwt","jwks":{ec}"#
    ))
    .is_ok());
    assert!(with(&format!(r#""token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256","jwks":{ec}"#)).is_ok());
    assert!(with(&format!(r#""token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"RS256","jwks":{ec}"#)).is_err());
    for alg in ["HS256", "none", "ES384"] {
        assert!(with(&format!(r#""token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"{alg}","jwks":{ec}"#)).is_err(), "{alg}");
    }
    assert!(with(
        r#""token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://app.example/jwks""#
    )
    .is_ok());
    // The signing alg means nothing to the other methods.
    assert!(with(r#""token_endpoint_auth_signing_alg":"HS256""#).is_err());
    // An HS256 ID token needs a secret, which a private_key_jwt client does not have.
    assert!(with(&format!(r#""token_endpoint_auth_method":"private_key_jwt","jwks":{ec},"id_token_signed_response_alg":"HS256""#)).is_err());
}

#[test]
fn only_secret_methods_get_a_secret() {
    assert!(AuthMethod::ClientSecretJwt.uses_secret());
    assert!(AuthMethod::ClientSecretBasic.uses_secret());
    assert!(!AuthMethod::PrivateKeyJwt.uses_secret());
    assert!(AuthMethod::PrivateKeyJwt.is_confidential());
    assert!(!AuthMethod::None.uses_secret());
}

#[test]
fn wrong_json_types_are_refused() {
    assert!(parse(r#"{"redirect_uris":"https://app.example/cb"}"#).is_err());
    assert!(parse(r#"[1]"#).is_err());
    assert!(parse(r#"{"skip_consent":"yes"}"#).is_err());
}

#[test]
fn groups_filter_is_a_name_prefix() {
    let cc = r#""grant_types":["client_credentials"]"#;
    let m = parse(&format!(r#"{{{cc},"groups_filter":"app-"}}"#)).unwrap();
    assert_eq!(m.groups_filter.as_deref(), Some("app-"));
    let stored = serde_json::to_value(&m).unwrap();
    assert_eq!(stored["groups_filter"], "app-");
    assert_eq!(parse(&format!("{{{cc}}}")).unwrap().groups_filter, None);
    for bad in [r#""""#, r#""a b""#, r#""-x""#, "42", r#"["app-"]"#] {
        let err = parse(&format!(r#"{{{cc},"groups_filter":{bad}}}"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{bad}");
    }
    let names = vec!["ops".to_string(), "app-b".into(), "app-a".into()];
    assert_eq!(m.visible_groups(names), vec!["app-a", "app-b"]);
}
