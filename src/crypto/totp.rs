//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of drift either side; the `otpauth://` URI authenticator apps scan, as a QR
//! code rendered here as inline SVG. Recovery codes: ten random single-use codes.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use subtle::ConstantTimeEq;

use super::random;

pub const DIGITS: usize = 6;
pub const PERIOD: i64 = 30;
/// Steps of clock drift accepted either side of now.
pub const DRIFT: i64 = 1;
/// 160-bit secrets (RFC 4226 §4 recommends at least 160 bits).
pub const SECRET_BYTES: usize = 20;

pub fn new_secret() -> Vec<u8> {
    random::bytes(SECRET_BYTES)
}

/// The secret as authenticator apps take it: base32 without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The time step `now` falls in.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(PERIOD)
}

/// RFC 4226 §5.3: HOTP(secret, counter), as `DIGITS` decimal digits.
pub fn code_at(secret: &[u8], step: i64) -> String {
    let mac = hmac_sha1(secret, &(step as u64).to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS as u32),
        width = DIGITS
    )
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC over SHA-1 with any key length cannot fail in OpenSSL; an error here would be a
    // broken library, not bad input.
    let key = PKey::hmac(key).expect("an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha1(), &key).expect("HMAC-SHA1");
    signer.update(data).expect("HMAC update");
    signer.sign_to_vec().expect("HMAC output")
}

/// The step whose code `given` is, within `DRIFT` steps of `now`; `None` if it is none of them
/// or is not 6 digits. Every candidate is compared (in constant time) whatever matches first.
pub fn matching_step(secret: &[u8], given: &str, now: i64) -> Option<i64> {
    let given = given.trim();
    if given.len() != DIGITS || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    let mut found = None;
    for step in current - DRIFT..=current + DRIFT {
        if bool::from(code_at(secret, step).as_bytes().ct_eq(given.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The Key URI Format authenticator apps read: `otpauth://totp/ISSUER:USER?secret=…`.
pub fn uri(issuer: &str, username: &str, secret: &[u8]) -> String {
    let mut url = url::Url::parse("otpauth://totp/").expect("a constant URL");
    url.set_path(&format!(
        "{}:{}",
        utf8_percent(issuer),
        utf8_percent(username)
    ));
    url.query_pairs_mut()
        .append_pair("secret", &encode_secret(secret))
        .append_pair("issuer", issuer)
        .append_pair("algorithm", "SHA1")
        .append_pair("digits", &DIGITS.to_string())
        .append_pair("period", &PERIOD.to_string());
    url.to_string()
}

fn utf8_percent(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The URI as a QR code in inline SVG (no script, no external image).
pub fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        // Only a URI longer than any QR code holds fails; the secret is shown as text too.
        Err(_) => String::new(),
    }
}

/// How many recovery codes a set holds.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits no one misreads (no 0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten codes of 10 characters (about 49 bits each), shown as `xxxxx-xxxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            // A uniform pick per character (the OS-seeded generator of `random`).
            let chars: String = (0..10)
                .map(|_| RECOVERY_ALPHABET[uniform_index(RECOVERY_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

fn uniform_index(n: usize) -> usize {
    use rand::Rng;
    rand::rng().random_range(0..n)
}

/// A recovery code as typed: case, spaces and dashes do not matter. `None` if it cannot be one.
pub fn normalize_recovery_code(given: &str) -> Option<String> {
    let code: String = given
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    (code.len() == 10 && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then(|| format!("{}-{}", &code[..5], &code[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(secret, step_of(time)), eight[2..], "at {time}");
        }
    }

    #[test]
    fn drift_of_one_step_either_side_and_no_more() {
        let secret = new_secret();
        let now = 1_700_000_015;
        let step = step_of(now);
        for s in [step - 1, step, step + 1] {
            assert_eq!(matching_step(&secret, &code_at(&secret, s), now), Some(s));
        }
        for s in [step - 2, step + 2] {
            let code = code_at(&secret, s);
            let near = [step - 1, step, step + 1].map(|x| code_at(&secret, x));
            if !near.contains(&code) {
                assert_eq!(matching_step(&secret, &code, now), None);
            }
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "1234567", now), None);
        assert_eq!(matching_step(&secret, "12a456", now), None);
    }

    #[test]
    fn uri_and_qr() {
        let uri = uri(
            "Sigil example",
            "alice@example.com",
            b"12345678901234567890",
        );
        assert!(
            uri.starts_with("otpauth://totp/Sigil%20example:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Sigil+example"),
            "{uri}"
        );
        let svg = qr_svg(&uri);
        assert!(svg.contains("<svg") && !svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for c in &codes {
            assert_eq!(normalize_recovery_code(c).as_deref(), Some(c.as_str()));
            let typed = c.to_uppercase().replace('-', " ");
            assert_eq!(normalize_recovery_code(&typed).as_deref(), Some(c.as_str()));
        }
        assert_eq!(normalize_recovery_code("abc"), None);
        assert_eq!(normalize_recovery_code("0000000000"), None);
    }
}
