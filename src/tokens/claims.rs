//! The user's claims that each scope releases (OIDC Core §5.4).

use serde_json::{Map, Value};

use crate::storage::users::UserRow;

/// The profile scope's claims a user may carry (OIDC Core §5.1), besides `name` and
/// `updated_at`, which Sigil keeps in their own columns.
pub const PROFILE: [&str; 12] = [
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
];

/// Claims of the address and phone scopes a user may carry.
pub const CONTACT: [&str; 2] = ["address", "phone_number"];

/// `sub` plus the claims `scope` allows, for the ID token and UserInfo.
pub fn for_scope(user: &UserRow, scope: &str) -> Map<String, Value> {
    let stored: Map<String, Value> = serde_json::from_str(&user.claims).unwrap_or_default();
    let mut out = Map::new();
    out.insert("sub".into(), user.id.clone().into());
    for s in scope.split(' ') {
        match s {
            "profile" => {
                if let Some(name) = &user.name {
                    out.insert("name".into(), name.clone().into());
                }
                out.insert("preferred_username".into(), user.username.clone().into());
                for c in PROFILE {
                    if let Some(v) = stored.get(c) {
                        out.insert(c.into(), v.clone());
                    }
                }
                out.insert("updated_at".into(), user.updated_at.into());
            }
            "email" => {
                if let Some(email) = &user.email {
                    out.insert("email".into(), email.clone().into());
                    out.insert("email_verified".into(), user.email_verified.into());
                }
            }
            "address" => {
                if let Some(v) = stored.get("address") {
                    out.insert("address".into(), v.clone());
                }
            }
            "phone" => {
                if let Some(v) = stored.get("phone_number") {
                    out.insert("phone_number".into(), v.clone());
                    out.insert("phone_number_verified".into(), false.into());
                }
            }
            _ => {}
        }
    }
    out
}
