//! Counts of what happened — sign-ins by outcome, lockouts, tokens issued, replays, cached
//! introspection answers, back-channel deliveries — cheap enough for the hottest paths: each
//! thread adds to its own stripe (one relaxed atomic addition on cache lines other threads
//! seldom touch; no lock, no allocation), and a report adds the stripes up.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::oauth::client_metadata::GrantType;

/// How a sign-in attempt ended (`sigil_sign_ins_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// Signed in: a session was started.
    Ok,
    /// The password was right; a second factor must follow.
    SecondFactorNeeded,
    /// A wrong password, an unknown or disabled user (one answer for all, SECURITY.md 19).
    WrongPassword,
    /// A wrong, reused or malformed code, or a refused passkey, at the second step.
    SecondFactorFailed,
    /// A passkey refused at a passwordless sign-in.
    PasskeyFailed,
    /// Refused unchecked: the account, the device or the address is locked out (429).
    Locked,
    /// The password queue was full (503).
    Busy,
    /// The request asks for an authentication level this user cannot give.
    Unmet,
}

impl SignIn {
    const ALL: [SignIn; 8] = [
        Self::Ok,
        Self::SecondFactorNeeded,
        Self::WrongPassword,
        Self::SecondFactorFailed,
        Self::PasskeyFailed,
        Self::Locked,
        Self::Busy,
        Self::Unmet,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::SecondFactorNeeded => "second_factor_needed",
            Self::WrongPassword => "wrong_password",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::PasskeyFailed => "passkey_failed",
            Self::Locked => "locked",
            Self::Busy => "busy",
            Self::Unmet => "unmet",
        }
    }
}

/// Which token of a response (`sigil_tokens_issued_total{token}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Access,
    Id,
    Refresh,
}

const TOKENS: [(Token, &str); 3] = [
    (Token::Access, "access_token"),
    (Token::Id, "id_token"),
    (Token::Refresh, "refresh_token"),
];

const GRANTS: [GrantType; 5] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
    GrantType::DeviceCode,
    GrantType::TokenExchange,
];

/// Short names for the grants (the URNs of RFC 8628 and RFC 8693 make poor labels).
fn grant_label(grant: GrantType) -> &'static str {
    match grant {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::ClientCredentials => "client_credentials",
        GrantType::DeviceCode => "device_code",
        GrantType::TokenExchange => "token_exchange",
    }
}

/// The algorithms a token is signed with; `opaque` for refresh tokens, which are not JWTs.
pub const OPAQUE: &str = "opaque";
const ALGS: [&str; 6] = ["RS256", "PS256", "ES256", "EdDSA", "HS256", OPAQUE];

/// What was presented again after it was used.
const REPLAYED: [&str; 3] = ["authorization_code", "refresh_token", "device_code"];

/// What became of a back-channel logout delivery (`NotRegistered` is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The target was refused before any connection (outbound rules).
    Refused,
    /// Every attempt failed.
    Failed,
}

const DELIVERIES: [(Delivery, &str); 3] = [
    (Delivery::Delivered, "delivered"),
    (Delivery::Refused, "refused"),
    (Delivery::Failed, "failed"),
];

// Where each family's counters sit in a stripe.
const SIGN_INS: usize = 0;
const LOCKOUTS: usize = SIGN_INS + SignIn::ALL.len();
const ISSUED: usize = LOCKOUTS + 1;
const REPLAYS: usize = ISSUED + GRANTS.len() * TOKENS.len() * ALGS.len();
const CACHE: usize = REPLAYS + REPLAYED.len();
const BACKCHANNEL: usize = CACHE + 2;
const SLOTS: usize = BACKCHANNEL + DELIVERIES.len();

/// Threads take stripes in turn; more threads than stripes share them (still correct, only
/// the cache lines are then shared).
const STRIPES: usize = 16;

#[repr(align(128))]
struct Stripe([AtomicU64; SLOTS]);

/// The counters, one stripe per thread (modulo `STRIPES`).
pub struct Events {
    stripes: Box<[Stripe]>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

/// This thread's stripe, assigned at its first count.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|s| *s)
}

impl Events {
    fn add(&self, slot: usize, n: u64) {
        self.stripes[stripe()].0[slot].fetch_add(n, Ordering::Relaxed);
    }

    fn total(&self, slot: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[slot].load(Ordering::Relaxed))
            .sum()
    }

    pub fn sign_in(&self, outcome: SignIn) {
        self.add(SIGN_INS + outcome as usize, 1);
    }

    /// Throttle keys (an account, a device, an address) that a failure just locked out.
    pub fn lockouts(&self, keys: usize) {
        if keys > 0 {
            self.add(LOCKOUTS, keys as u64);
        }
    }

    /// One token handed out for `grant`, signed with `alg` (`OPAQUE` for a refresh token).
    pub fn issued(&self, grant: GrantType, token: Token, alg: &str) {
        // Every algorithm Sigil signs with is listed; an unknown one would be a bug, not a
        // reason to fail a token response.
        let Some(a) = ALGS.iter().position(|x| *x == alg) else {
            return;
        };
        let g = GRANTS.iter().position(|x| *x == grant).unwrap_or(0);
        self.add(
            ISSUED + (g * TOKENS.len() + token as usize) * ALGS.len() + a,
            1,
        );
    }

    /// A used `authorization_code`, `refresh_token` or `device_code` presented again.
    pub fn replay(&self, token: &str) {
        if let Some(i) = REPLAYED.iter().position(|x| *x == token) {
            self.add(REPLAYS + i, 1);
        }
    }

    /// An introspection asked the cache of answers: found it (`hit`) or not.
    pub fn introspection_cache(&self, hit: bool) {
        self.add(CACHE + usize::from(!hit), 1);
    }

    pub fn delivery(&self, outcome: Delivery) {
        self.add(BACKCHANNEL + outcome as usize, 1);
    }

    pub(super) fn render(&self, out: &mut String) {
        let mut family = |name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        family(
            "sigil_sign_ins_total",
            "Sign-in attempts at the login, second-step and passkey forms, by outcome.",
        );
        for outcome in SignIn::ALL {
            let n = self.total(SIGN_INS + outcome as usize);
            let _ = writeln!(
                out,
                "sigil_sign_ins_total{{outcome=\"{}\"}} {n}",
                outcome.label()
            );
        }
        let _ = writeln!(
            out,
            "# HELP sigil_lockouts_total Lockouts started (an account, a browser or a client address locked after repeated failures).\n# TYPE sigil_lockouts_total counter\nsigil_lockouts_total {}",
            self.total(LOCKOUTS)
        );
        let _ = writeln!(
            out,
            "# HELP sigil_tokens_issued_total Tokens handed out, by grant, token and signing algorithm (refresh tokens: opaque).\n# TYPE sigil_tokens_issued_total counter"
        );
        for (g, grant) in GRANTS.iter().enumerate() {
            for (t, (_, token)) in TOKENS.iter().enumerate() {
                for (a, alg) in ALGS.iter().enumerate() {
                    let n = self.total(ISSUED + (g * TOKENS.len() + t) * ALGS.len() + a);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "sigil_tokens_issued_total{{grant=\"{}\",token=\"{token}\",alg=\"{alg}\"}} {n}",
                            grant_label(*grant)
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP sigil_token_replays_total Used codes and refresh tokens presented again by their client (the grant is revoked).\n# TYPE sigil_token_replays_total counter"
        );
        for (i, token) in REPLAYED.iter().enumerate() {
            let n = self.total(REPLAYS + i);
            let _ = writeln!(out, "sigil_token_replays_total{{token=\"{token}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP sigil_introspection_cache_lookups_total Introspections of an access token answered from this node's cache (hit) or not (miss).\n# TYPE sigil_introspection_cache_lookups_total counter"
        );
        for (i, result) in ["hit", "miss"].iter().enumerate() {
            let n = self.total(CACHE + i);
            let _ = writeln!(
                out,
                "sigil_introspection_cache_lookups_total{{result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sigil_backchannel_logout_deliveries_total Back-channel logout deliveries, by outcome (failed: every attempt failed).\n# TYPE sigil_backchannel_logout_deliveries_total counter"
        );
        for (delivery, label) in DELIVERIES {
            let n = self.total(BACKCHANNEL + delivery as usize);
            let _ = writeln!(
                out,
                "sigil_backchannel_logout_deliveries_total{{outcome=\"{label}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_follow_the_enums() {
        for (i, outcome) in SignIn::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i);
        }
        for (i, (token, _)) in TOKENS.iter().enumerate() {
            assert_eq!(*token as usize, i);
        }
        for (i, (delivery, _)) in DELIVERIES.iter().enumerate() {
            assert_eq!(*delivery as usize, i);
        }
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let events = std::sync::Arc::new(Events::default());
        let threads: Vec<_> = (0..STRIPES + 3)
            .map(|_| {
                let events = events.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        events.sign_in(SignIn::WrongPassword);
                        events.issued(GrantType::ClientCredentials, Token::Access, "ES256");
                    }
                    events.replay("refresh_token");
                    events.introspection_cache(true);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        events.issued(GrantType::AuthorizationCode, Token::Refresh, OPAQUE);
        events.issued(GrantType::AuthorizationCode, Token::Id, "none");
        events.replay("dpop_proof");
        events.lockouts(2);
        events.delivery(Delivery::Failed);
        let mut out = String::new();
        events.render(&mut out);
        let n = (STRIPES + 3) * 100;
        for line in [
            format!("sigil_sign_ins_total{{outcome=\"wrong_password\"}} {n}\n"),
            "sigil_sign_ins_total{outcome=\"ok\"} 0\n".into(),
            format!("sigil_tokens_issued_total{{grant=\"client_credentials\",token=\"access_token\",alg=\"ES256\"}} {n}\n"),
            "sigil_tokens_issued_total{grant=\"authorization_code\",token=\"refresh_token\",alg=\"opaque\"} 1\n".into(),
            format!("sigil_token_replays_total{{token=\"refresh_token\"}} {}\n", STRIPES + 3),
            "sigil_token_replays_total{token=\"authorization_code\"} 0\n".into(),
            format!("sigil_introspection_cache_lookups_total{{result=\"hit\"}} {}\n", STRIPES + 3),
            "sigil_introspection_cache_lookups_total{result=\"miss\"} 0\n".into(),
            "sigil_lockouts_total 2\n".into(),
            "sigil_backchannel_logout_deliveries_total{outcome=\"failed\"} 1\n".into(),
        ] {
            assert!(out.contains(&line), "{line} in\n{out}");
        }
        // An unknown algorithm or replayed kind is not counted anywhere.
        assert!(!out.contains("alg=\"none\""));
        assert!(!out.contains("dpop_proof"));
        assert_eq!(out.matches("sigil_tokens_issued_total{").count(), 2);
    }
}
