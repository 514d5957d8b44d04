//! Authentication strength (DESIGN.md "Authentication strength"): the methods a sign-in used,
//! as RFC 8176 `amr` values, and the level they reach, as `acr`: `pwd` < `mfa` < `phr`.

use serde::{Deserialize, Serialize};

/// RFC 8176 §2 method values Sigil uses.
pub const PWD: &str = "pwd";
pub const OTP: &str = "otp";
/// A passkey bound to one device (not backup-eligible): proof of a hardware key.
pub const HWK: &str = "hwk";
/// A passkey that can be synced between devices: proof of a software key.
pub const SWK: &str = "swk";
/// The authenticator verified its user (PIN or biometric): WebAuthn user verification.
pub const USER: &str = "user";
/// Two or more factors.
pub const MFA: &str = "mfa";

/// The `acr` levels, weakest first (so `Ord` compares strength).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acr {
    /// A password alone.
    Pwd,
    /// Two factors (a password and a one-time code).
    Mfa,
    /// Phishing-resistant: a passkey, alone with user verification or after a password.
    Phr,
}

impl Acr {
    /// Weakest first, as discovery lists them (`acr_values_supported`).
    pub const ALL: [Acr; 3] = [Acr::Pwd, Acr::Mfa, Acr::Phr];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Pwd => "pwd",
            Acr::Mfa => "mfa",
            Acr::Phr => "phr",
        }
    }

    pub fn parse(value: &str) -> Option<Acr> {
        Acr::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// The level of a stored session or grant; any other value (a session from before levels
    /// existed) is a password's.
    pub fn stored(value: &str) -> Acr {
        Acr::parse(value).unwrap_or(Acr::Pwd)
    }

    /// The level the methods `amr` reach.
    pub fn of(amr: &[String]) -> Acr {
        let has = |m: &str| amr.iter().any(|x| x == m);
        if has(HWK) || has(SWK) {
            Acr::Phr
        } else if has(MFA) {
            Acr::Mfa
        } else {
            Acr::Pwd
        }
    }
}

/// `amr` for a sign-in that used `methods` in order: each method once, and `mfa` at the end
/// whenever two factors were used (a passkey with user verification is two on its own).
pub fn amr(methods: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in methods {
        if *m != MFA && !out.iter().any(|x| x == m) {
            out.push((*m).to_string());
        }
    }
    let factors = out.iter().filter(|m| m.as_str() != USER).count();
    let verified_key = out.iter().any(|m| m == USER);
    if factors >= 2 || verified_key {
        out.push(MFA.to_string());
    }
    out
}

/// Parses a space-separated stored `amr`.
pub fn split(stored: &str) -> Vec<String> {
    stored
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_methods() {
        assert_eq!(amr(&[PWD]), vec!["pwd"]);
        assert_eq!(Acr::of(&amr(&[PWD])), Acr::Pwd);
        assert_eq!(amr(&[PWD, OTP]), vec!["pwd", "otp", "mfa"]);
        assert_eq!(Acr::of(&amr(&[PWD, OTP])), Acr::Mfa);
        assert_eq!(amr(&[HWK, USER]), vec!["hwk", "user", "mfa"]);
        assert_eq!(Acr::of(&amr(&[SWK, USER])), Acr::Phr);
        assert_eq!(amr(&[PWD, OTP, OTP]), vec!["pwd", "otp", "mfa"]);
        assert!(Acr::Pwd < Acr::Mfa && Acr::Mfa < Acr::Phr);
        assert_eq!(Acr::stored("urn:sigil:acr:password"), Acr::Pwd);
        assert_eq!(Acr::parse("phr"), Some(Acr::Phr));
        assert_eq!(Acr::parse("PHR"), None);
    }
}
