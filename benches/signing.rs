//! Raw JWS signing throughput, one signer per algorithm built once (as Sigil's keyring does when a
//! key is loaded or rotated), so the figures are the ceiling of the token endpoint's signing step.
//!
//! Run by hand, never in CI:
//!
//! ```text
//! cargo bench --bench signing                 # all algorithms, ~1 minute
//! cargo bench --bench signing -- ES256        # a filter, as with any criterion bench
//! ```
//!
//! Two groups, four algorithms each (RS256 and PS256 with RSA 2048, ES256 with P-256, EdDSA with
//! Ed25519):
//! - `sign_raw/<alg>`: `JwsSigner::sign` over a ~300-byte JWT-like payload;
//! - `serialize_compact/<alg>`: `josekit::jws::serialize_compact(payload, &header, signer)` with a
//!   `typ: at+jwt` + `kid` header, which is what `tokens::access_token::mint` does per token.
//!
//! Each benchmark counts one element per iteration, so criterion's `thrpt` line is signatures per
//! second (ops/s = 1 / time).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use josekit::jws::{JwsHeader, JwsSigner};
use sigil::crypto::keys::{generate, signer, SigningAlg};

/// A JWT-like claims set of about 300 bytes (the shape of an RFC 9068 access token).
fn payload() -> Vec<u8> {
    let claims = serde_json::json!({
        "iss": "https://id.bench.example",
        "sub": "bench",
        "aud": "https://api.bench.example/resource-server",
        "exp": 1_767_225_600_i64,
        "iat": 1_767_225_000_i64,
        "jti": "2f0c5b1e9a7d4c3f8e6b1a0d9c8b7a6f",
        "client_id": "bench",
        "scope": "api:read api:write openid profile email offline_access",
        "auth_time": 1_767_224_900_i64,
        "acr": "urn:sigil:acr:password",
    });
    serde_json::to_vec(&claims).expect("JSON")
}

struct Subject {
    alg: SigningAlg,
    kid: String,
    signer: Box<dyn JwsSigner>,
}

fn subjects() -> Vec<Subject> {
    SigningAlg::ALL
        .into_iter()
        .map(|alg| {
            let key = generate(alg).expect("key generation");
            let signer = signer(alg, &key.private_der, &key.kid).expect("signer from DER");
            Subject {
                alg,
                kid: key.kid,
                signer,
            }
        })
        .collect()
}

fn signing(c: &mut Criterion) {
    let payload = payload();
    let subjects = subjects();
    eprintln!("payload: {} bytes", payload.len());

    let mut group = c.benchmark_group("sign_raw");
    group.throughput(Throughput::Elements(1));
    for s in &subjects {
        group.bench_with_input(BenchmarkId::from_parameter(s.alg), &payload, |b, p| {
            b.iter(|| s.signer.sign(black_box(p)).expect("sign"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("serialize_compact");
    group.throughput(Throughput::Elements(1));
    for s in &subjects {
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(&s.kid);
        group.bench_with_input(BenchmarkId::from_parameter(s.alg), &payload, |b, p| {
            b.iter(|| {
                josekit::jws::serialize_compact(black_box(p), &header, s.signer.as_ref())
                    .expect("JWS")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = signing
}
criterion_main!(benches);
