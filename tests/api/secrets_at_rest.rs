//! Secrets in the database are sealed under the master key: private signing keys and client
//! secrets never appear in plain form, and they open only with the right key and row.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};
use sigil::crypto::keys::{self, SigningAlg};
use sigil::crypto::master_key::MasterKey;
use sigil::storage::{clients, signing_keys};

both_backends!(
    private_keys_are_sealed_under_the_master_key,
    client_secrets_are_sealed_under_the_master_key
);

async fn private_keys_are_sealed_under_the_master_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let rows = app.state.db.run(signing_keys::all).await.unwrap();
    assert_eq!(rows.len(), 8);
    let other = MasterKey::generate();
    for row in rows {
        assert!(
            !row.public_jwk.contains("\"d\""),
            "private member in the stored JWK"
        );
        assert!(other.open(&row.private_sealed, row.kid.as_bytes()).is_err());
        assert!(app
            .state
            .master
            .open(&row.private_sealed, b"another kid")
            .is_err());
        let der = app
            .state
            .master
            .open(&row.private_sealed, row.kid.as_bytes())
            .unwrap();
        assert!(!row
            .private_sealed
            .windows(32)
            .any(|w| der.windows(32).any(|d| d == w)));
        // The opened key is the one the kid names (RFC 7638 thumbprint of its public part).
        let alg: SigningAlg = row.alg.parse().unwrap();
        let signer = keys::signer(alg, &der, &row.kid).unwrap();
        let jwk: serde_json::Map<String, Value> = serde_json::from_str(&row.public_jwk).unwrap();
        let verifier = keys::verifier(alg, &jwk).unwrap();
        verifier.verify(b"m", &signer.sign(b"m").unwrap()).unwrap();
        assert_eq!(keys::thumbprint(&jwk), row.kid);
    }
}

async fn client_secrets_are_sealed_under_the_master_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret) = app.cc_client("svc");
    let row = app
        .state
        .db
        .run(|c| clients::get(c, "svc"))
        .await
        .unwrap()
        .unwrap();
    let sealed = row.secret_sealed.clone().unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(!row.metadata.contains(&secret));
    assert_eq!(
        app.state.master.open(&sealed, b"svc").unwrap(),
        secret.as_bytes()
    );
    assert!(app.state.master.open(&sealed, b"other-client").is_err());
}
