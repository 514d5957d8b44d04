//! Cookie names and attributes. Under HTTPS the cookies are `Secure` with the `__Host-` prefix
//! (bound to this host, path `/`); always `HttpOnly; SameSite=Lax; Path=/`. The session and CSRF
//! cookies last as long as the browser session; the device cookie about a year.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;

use crate::config::Settings;

pub const SESSION: &str = "sigil_session";
pub const CSRF: &str = "sigil_csrf";
/// A random 256-bit id the browser keeps once it has signed in: the per-account lockout does
/// not apply to a browser that signed in to that account before (DESIGN.md "Brute force").
pub const DEVICE: &str = "sigil_device";

pub fn name(settings: &Settings, base: &'static str) -> String {
    if settings.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub fn build(settings: &Settings, base: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name(settings, base), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.is_https())
        .finish()
}

/// A cookie the browser keeps for `max_age_secs`, across restarts.
pub fn lasting(
    settings: &Settings,
    base: &'static str,
    value: String,
    max_age_secs: i64,
) -> Cookie<'static> {
    let mut c = build(settings, base, value);
    c.set_max_age(actix_web::cookie::time::Duration::seconds(max_age_secs));
    c
}

/// A cookie that tells the browser to forget `base`.
pub fn removal(settings: &Settings, base: &'static str) -> Cookie<'static> {
    let mut c = build(settings, base, String::new());
    c.make_removal();
    c
}

pub fn read(req: &HttpRequest, settings: &Settings, base: &'static str) -> Option<String> {
    req.cookie(&name(settings, base))
        .map(|c| c.value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_issuers_get_secure_host_prefixed_cookies() {
        let mut settings = Settings::default();
        let plain = build(&settings, SESSION, "v".into()).to_string();
        assert_eq!(plain, "sigil_session=v; HttpOnly; SameSite=Lax; Path=/");
        settings.issuer = url::Url::parse("https://id.example.com").unwrap();
        let secure = build(&settings, SESSION, "v".into()).to_string();
        assert!(secure.starts_with("__Host-sigil_session=v;"), "{secure}");
        assert!(
            secure.contains("Secure") && secure.contains("HttpOnly") && secure.contains("Path=/")
        );
        assert!(
            !secure.contains("Domain"),
            "__Host- cookies carry no Domain"
        );
        let device = lasting(&settings, DEVICE, "d".into(), 365 * 86400).to_string();
        assert!(device.starts_with("__Host-sigil_device=d;"), "{device}");
        assert!(device.contains("Max-Age=31536000") && device.contains("Secure"));
        assert!(device.contains("HttpOnly") && device.contains("SameSite=Lax"));
    }
}
