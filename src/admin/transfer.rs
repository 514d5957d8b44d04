//! `sigil export` and `sigil import` (DESIGN.md "Operations"): users with their password
//! hashes and second factors, groups, clients, resource servers, consents, the live part of
//! the access-token deny-list and, on request, the signing keys, as one versioned JSON
//! document ([`document`]), and back into a database of either kind.
//!
//! Nothing is decrypted on the way: secrets stay sealed under the master key, so the target
//! must run with the same one. An import checks the whole document first — version, shapes,
//! references, and that every sealed value opens under the configured master key — and then
//! writes it in one transaction, or changes nothing.

pub mod document;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use self::document::{Document, NOTE, VERSION};
use crate::audit::{By, EventType};
use crate::clock::rfc3339;
use crate::crypto::keys::{self, KeyState, SigningAlg};
use crate::crypto::master_key::MasterKey;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::resource_metadata::ResourceMetadata;
use crate::storage::clients::ClientRow;
use crate::storage::factors::TotpRow;
use crate::storage::groups::GroupRow;
use crate::storage::passkeys::PasskeyRow;
use crate::storage::registrations::RegisteredRow;
use crate::storage::resources::ResourceRow;
use crate::storage::signing_keys::KeyRow;
use crate::storage::transfer::{
    self as stored, ConsentRow, MemberRow, RecoveryCodeRow, RevokedRow, Snapshot,
};
use crate::storage::users::UserRow;
use crate::storage::{self, AnyConnection, Database, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the document is not a Sigil export: {0}; nothing was imported")]
    Invalid(String),
    #[error(
        "{0} does not open under the configured master key: import with the master key of the \
         database the export came from (master_key or master_key_file); nothing was imported"
    )]
    WrongMasterKey(String),
    #[error(
        "the database already holds {} users, {} clients and {} resource servers: import into \
         a database that holds none yet, or pass --merge to add to this one; nothing was \
         imported", .0.users, .0.clients, .0.resources
    )]
    NotEmpty(stored::Holdings),
    #[error(
        "--merge keeps this database's signing keys, and the document carries some: export \
         without --with-keys to merge; nothing was imported"
    )]
    MergeWithKeys,
    #[error("{} conflicts, nothing was imported:\n  {}", .0.len(), .0.join("\n  "))]
    Conflicts(Vec<String>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What an export or import carried: rows per table.
pub fn summary(s: &Snapshot) -> Value {
    json!({
        "users": s.users.len(),
        "totp_factors": s.totp.len(),
        "recovery_codes": s.recovery_codes.len(),
        "passkeys": s.passkeys.len(),
        "groups": s.groups.len(),
        "group_members": s.members.len(),
        "clients": s.clients.len(),
        "resource_servers": s.resources.len(),
        "consents": s.consents.len(),
        "revoked_tokens": s.revoked_tokens.len(),
        "signing_keys": s.signing_keys.as_ref().map(Vec::len),
    })
}

/// Reads the database into a document. `first_party`: the clients Sigil registers for itself
/// (its account page and console), left out — the target's `serve` or `migrate` makes its own,
/// with its own issuer in their redirect URIs.
pub fn export(
    conn: &mut AnyConnection,
    with_keys: bool,
    first_party: &[&str],
    now: i64,
) -> Result<(Document, Snapshot), StorageError> {
    let mut s = stored::read(conn, with_keys, now)?;
    s.clients
        .retain(|c| !first_party.contains(&c.client_id.as_str()));
    s.consents
        .retain(|c| !first_party.contains(&c.client_id.as_str()));
    s.registrations
        .retain(|r| !first_party.contains(&r.client_id.as_str()));
    let doc = to_document(&s, now)?;
    Ok((doc, s))
}

fn object(text: &str, what: impl FnOnce() -> String) -> Result<Map<String, Value>, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("{}: {e}", what())))
}

fn to_document(s: &Snapshot, now: i64) -> Result<Document, StorageError> {
    use document as d;
    let mut users = Vec::with_capacity(s.users.len());
    for u in &s.users {
        let mine = |id: &str| id == u.id;
        users.push(d::User {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            claims: object(&u.claims, || format!("claims of user {:?}", u.username))?,
            password_hash: u.password_hash.clone(),
            admin: u.is_admin,
            disabled: u.disabled,
            tokens_valid_after: u.tokens_valid_after,
            created_at: u.created_at,
            updated_at: u.updated_at,
            totp: s.totp.iter().find(|t| mine(&t.user_id)).map(|t| d::Totp {
                secret_sealed: t.secret_sealed.clone(),
                confirmed_at: t.confirmed_at,
                last_step: t.last_step,
                created_at: t.created_at,
            }),
            recovery_codes: (s.recovery_codes.iter().filter(|r| mine(&r.user_id)))
                .map(|r| d::RecoveryCode {
                    code_hash: r.code_hash.clone(),
                    created_at: r.created_at,
                    used_at: r.used_at,
                })
                .collect(),
            passkeys: (s.passkeys.iter().filter(|p| mine(&p.user_id)))
                .map(|p| {
                    Ok(d::Passkey {
                        credential_id: p.credential_id.clone(),
                        name: p.name.clone(),
                        credential: serde_json::from_str(&p.credential).map_err(|e| {
                            StorageError::Corrupt(format!("passkey {}: {e}", p.credential_id))
                        })?,
                        backup_eligible: p.backup_eligible,
                        sign_count: p.sign_count,
                        created_at: p.created_at,
                        last_used_at: p.last_used_at,
                    })
                })
                .collect::<Result<_, StorageError>>()?,
        });
    }
    let groups = (s.groups.iter())
        .map(|g| d::Group {
            id: g.id.clone(),
            name: g.name.clone(),
            created_at: g.created_at,
            members: (s.members.iter().filter(|m| m.group_id == g.id))
                .map(|m| d::Member {
                    user_id: m.user_id.clone(),
                    added_at: m.added_at,
                })
                .collect(),
        })
        .collect();
    let mut clients = Vec::with_capacity(s.clients.len());
    for c in &s.clients {
        clients.push(d::Client {
            client_id: c.client_id.clone(),
            secret_sealed: c.secret_sealed.clone(),
            metadata: object(&c.metadata, || format!("client {:?}", c.client_id))?,
            created_at: c.created_at,
            registration: (s.registrations.iter())
                .find(|r| r.client_id == c.client_id)
                .map(|r| d::Registration {
                    access_token_hash: r.access_token_hash.clone(),
                    client_address: r.client_address.clone(),
                    created_at: r.created_at,
                }),
        });
    }
    let mut resource_servers = Vec::with_capacity(s.resources.len());
    for r in &s.resources {
        resource_servers.push(d::ResourceServer {
            resource: r.resource.clone(),
            metadata: object(&r.metadata, || format!("resource {:?}", r.resource))?,
            created_at: r.created_at,
        });
    }
    let signing_keys = match &s.signing_keys {
        None => None,
        Some(rows) => Some(
            rows.iter()
                .map(|k| {
                    Ok(d::SigningKey {
                        kid: k.kid.clone(),
                        alg: k.alg.clone(),
                        state: k.state.clone(),
                        public_jwk: object(&k.public_jwk, || format!("signing key {}", k.kid))?,
                        private_sealed: k.private_sealed.clone(),
                        created_at: k.created_at,
                        activated_at: k.activated_at,
                        retiring_at: k.retiring_at,
                        retire_after: k.retire_after,
                        retired_at: k.retired_at,
                    })
                })
                .collect::<Result<_, StorageError>>()?,
        ),
    };
    Ok(Document {
        sigil_export: VERSION,
        exported_at: rfc3339(now),
        sigil_version: env!("CARGO_PKG_VERSION").into(),
        note: NOTE.into(),
        users,
        groups,
        clients,
        resource_servers,
        consents: (s.consents.iter())
            .map(|c| document::Consent {
                user_id: c.user_id.clone(),
                client_id: c.client_id.clone(),
                scope: c.scope.clone(),
                granted_at: c.granted_at,
            })
            .collect(),
        revoked_tokens: (s.revoked_tokens.iter())
            .map(|r| document::RevokedToken {
                jti: r.jti.clone(),
                expires_at: r.expires_at,
            })
            .collect(),
        signing_keys,
    })
}

/// Parses and checks a document: its version first (a newer one is named as such), then its
/// shape, then what it says.
pub fn parse(bytes: &[u8]) -> Result<Document, ImportError> {
    let invalid = |m: String| ImportError::Invalid(m);
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON ({e})")))?;
    match value.get("sigil_export").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(invalid(format!(
                "version {v}, and this Sigil reads version {VERSION}: import with the Sigil \
                 that exported it, or a newer one"
            )))
        }
        None => return Err(invalid("no \"sigil_export\" version number".into())),
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// A text that can be stored: not empty, no NUL (`storage::storable`).
fn text(value: &str, what: impl FnOnce() -> String) -> Result<(), ImportError> {
    if value.is_empty() || !storage::storable(value) {
        return Err(ImportError::Invalid(format!(
            "{} is empty or holds NUL",
            what()
        )));
    }
    Ok(())
}

fn unique<'a>(seen: &mut HashSet<&'a str>, value: &'a str, what: &str) -> Result<(), ImportError> {
    if !seen.insert(value) {
        return Err(ImportError::Invalid(format!(
            "{what} {value:?} appears twice"
        )));
    }
    Ok(())
}

fn json_text(value: &impl serde::Serialize) -> Result<String, ImportError> {
    serde_json::to_string(value).map_err(|e| ImportError::Invalid(e.to_string()))
}

/// The document as rows, every reference and sealed value checked. `first_party` clients (and
/// consents to them) are skipped: the target has its own.
pub fn to_snapshot(
    doc: Document,
    master: &MasterKey,
    first_party: &[&str],
) -> Result<Snapshot, ImportError> {
    let invalid = ImportError::Invalid;
    let mut s = Snapshot::default();
    let (mut ids, mut names, mut credentials) = (HashSet::new(), HashSet::new(), HashSet::new());
    for u in &doc.users {
        text(&u.id, || "a user id".into())?;
        text(&u.username, || format!("the username of user {}", u.id))?;
        unique(&mut ids, &u.id, "user id")?;
        unique(&mut names, &u.username, "username")?;
        text(&u.password_hash, || {
            format!("the password hash of {:?}", u.username)
        })?;
        for p in &u.passkeys {
            text(&p.credential_id, || {
                format!("a passkey id of {:?}", u.username)
            })?;
            unique(&mut credentials, &p.credential_id, "passkey")?;
        }
    }
    for u in doc.users {
        if let Some(t) = u.totp {
            master
                .open(&t.secret_sealed, &crate::factors::totp_aad(&u.id))
                .map_err(|_| {
                    ImportError::WrongMasterKey(format!("the TOTP secret of {:?}", u.username))
                })?;
            s.totp.push(TotpRow {
                user_id: u.id.clone(),
                secret_sealed: t.secret_sealed,
                confirmed_at: t.confirmed_at,
                last_step: t.last_step,
                created_at: t.created_at,
            });
        }
        for r in u.recovery_codes {
            text(&r.code_hash, || {
                format!("a recovery code of {:?}", u.username)
            })?;
            s.recovery_codes.push(RecoveryCodeRow {
                user_id: u.id.clone(),
                code_hash: r.code_hash,
                created_at: r.created_at,
                used_at: r.used_at,
            });
        }
        for p in u.passkeys {
            s.passkeys.push(PasskeyRow {
                credential_id: p.credential_id,
                user_id: u.id.clone(),
                name: p.name,
                credential: json_text(&p.credential)?,
                backup_eligible: p.backup_eligible,
                sign_count: p.sign_count,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            });
        }
        s.users.push(UserRow {
            id: u.id,
            username: u.username,
            email: u.email,
            email_verified: u.email_verified,
            name: u.name,
            claims: json_text(&u.claims)?,
            password_hash: u.password_hash,
            is_admin: u.admin,
            disabled: u.disabled,
            tokens_valid_after: u.tokens_valid_after,
            created_at: u.created_at,
            updated_at: u.updated_at,
        });
    }
    let user_ids: HashSet<String> = s.users.iter().map(|u| u.id.clone()).collect();
    let (mut group_ids, mut group_names) = (HashSet::new(), HashSet::new());
    for g in doc.groups {
        text(&g.id, || "a group id".into())?;
        crate::oauth::groups::check_name(&g.name).map_err(invalid)?;
        if !group_ids.insert(g.id.clone()) || !group_names.insert(g.name.clone()) {
            return Err(invalid(format!("group {:?} appears twice", g.name)));
        }
        let mut members = HashSet::new();
        for m in g.members {
            if !user_ids.contains(&m.user_id) || !members.insert(m.user_id.clone()) {
                return Err(invalid(format!(
                    "group {:?} names member {:?}, not a user of the document or twice",
                    g.name, m.user_id
                )));
            }
            s.members.push(MemberRow {
                group_id: g.id.clone(),
                user_id: m.user_id,
                added_at: m.added_at,
            });
        }
        s.groups.push(GroupRow {
            id: g.id,
            name: g.name,
            created_at: g.created_at,
        });
    }
    let mut client_ids = HashSet::new();
    for c in doc.clients {
        text(&c.client_id, || "a client id".into())?;
        if !client_ids.insert(c.client_id.clone()) {
            return Err(invalid(format!("client {:?} appears twice", c.client_id)));
        }
        if first_party.contains(&c.client_id.as_str()) {
            continue;
        }
        let metadata = json_text(&c.metadata)?;
        serde_json::from_str::<ClientMetadata>(&metadata)
            .map_err(|e| invalid(format!("client {:?}: {e}", c.client_id)))?;
        if let Some(sealed) = &c.secret_sealed {
            master.open(sealed, c.client_id.as_bytes()).map_err(|_| {
                ImportError::WrongMasterKey(format!("the secret of client {:?}", c.client_id))
            })?;
        }
        if let Some(r) = c.registration {
            s.registrations.push(RegisteredRow {
                client_id: c.client_id.clone(),
                access_token_hash: r.access_token_hash,
                client_address: r.client_address,
                created_at: r.created_at,
            });
        }
        s.clients.push(ClientRow {
            client_id: c.client_id,
            secret_sealed: c.secret_sealed,
            metadata,
            created_at: c.created_at,
        });
    }
    let mut resources = HashSet::new();
    for r in doc.resource_servers {
        let metadata = json_text(&r.metadata)?;
        let parsed: ResourceMetadata = serde_json::from_str(&metadata)
            .map_err(|e| invalid(format!("resource {:?}: {e}", r.resource)))?;
        if parsed.resource != r.resource || !resources.insert(r.resource.clone()) {
            return Err(invalid(format!(
                "resource {:?} appears twice or differs from its metadata",
                r.resource
            )));
        }
        s.resources.push(ResourceRow {
            resource: r.resource,
            metadata,
            created_at: r.created_at,
        });
    }
    let kept: HashSet<&str> = s.clients.iter().map(|c| c.client_id.as_str()).collect();
    let mut consents = HashSet::new();
    for c in doc.consents {
        if first_party.contains(&c.client_id.as_str()) {
            continue;
        }
        if !user_ids.contains(&c.user_id)
            || !kept.contains(c.client_id.as_str())
            || !consents.insert((c.user_id.clone(), c.client_id.clone()))
        {
            return Err(invalid(format!(
                "a consent of user {:?} to client {:?} names what the document lacks, or twice",
                c.user_id, c.client_id
            )));
        }
        s.consents.push(ConsentRow {
            user_id: c.user_id,
            client_id: c.client_id,
            scope: c.scope,
            granted_at: c.granted_at,
        });
    }
    for r in doc.revoked_tokens {
        text(&r.jti, || "a revoked token's jti".into())?;
        s.revoked_tokens.push(RevokedRow {
            jti: r.jti,
            expires_at: r.expires_at,
        });
    }
    s.signing_keys = doc
        .signing_keys
        .map(|keys| signing_keys(keys, master))
        .transpose()?;
    Ok(s)
}

fn signing_keys(
    keys: Vec<document::SigningKey>,
    master: &MasterKey,
) -> Result<Vec<KeyRow>, ImportError> {
    let mut rows = Vec::with_capacity(keys.len());
    let mut kids = HashSet::new();
    let mut active: HashMap<SigningAlg, String> = HashMap::new();
    for k in keys {
        let bad = |m: String| ImportError::Invalid(format!("signing key {:?}: {m}", k.kid));
        text(&k.kid, || "a kid".into())?;
        if !kids.insert(k.kid.clone()) {
            return Err(bad("appears twice".into()));
        }
        let alg: SigningAlg = k.alg.parse().map_err(bad)?;
        let state: KeyState = k.state.parse().map_err(bad)?;
        keys::verifier(alg, &k.public_jwk).map_err(|e| bad(e.to_string()))?;
        let der = master
            .open(&k.private_sealed, k.kid.as_bytes())
            .map_err(|_| ImportError::WrongMasterKey(format!("signing key {}", k.kid)))?;
        keys::signer(alg, &der, &k.kid).map_err(|e| bad(e.to_string()))?;
        if state == KeyState::Active && active.insert(alg, k.kid.clone()).is_some() {
            return Err(bad(format!("a second active {alg} key")));
        }
        rows.push(KeyRow {
            public_jwk: json_text(&k.public_jwk)?,
            kid: k.kid,
            alg: k.alg,
            state: k.state,
            private_sealed: k.private_sealed,
            created_at: k.created_at,
            activated_at: k.activated_at,
            retiring_at: k.retiring_at,
            retire_after: k.retire_after,
            retired_at: k.retired_at,
        });
    }
    // They replace the target's keys: each algorithm must keep a key that signs.
    if let Some(alg) = SigningAlg::ALL
        .into_iter()
        .find(|a| !active.contains_key(a))
    {
        return Err(ImportError::Invalid(format!(
            "the signing keys hold no active {alg} key"
        )));
    }
    Ok(rows)
}

/// Loads a checked snapshot in one transaction: into a database that holds no users, clients
/// (besides `first_party`) or resource servers, or with `merge` into any, provided nothing in
/// the snapshot is there already. Every conflict is reported and then nothing is written.
pub fn import(
    db: &Database,
    snapshot: &Snapshot,
    merge: bool,
    first_party: &[&str],
    now: i64,
) -> Result<(), ImportError> {
    if merge && snapshot.signing_keys.is_some() {
        return Err(ImportError::MergeWithKeys);
    }
    db.with_conn(|conn| {
        storage::atomically(conn, |conn| {
            if snapshot.signing_keys.is_some() {
                // Key changes take turns with rotations on every node.
                storage::lock(conn, "signing_keys", now)?;
            }
            let held = stored::holdings(conn, first_party)?;
            if !merge && !held.is_empty() {
                return Err(ImportError::NotEmpty(held));
            }
            let conflicts = stored::conflicts(conn, snapshot)?;
            if !conflicts.is_empty() {
                return Err(ImportError::Conflicts(conflicts));
            }
            stored::write(conn, snapshot)?;
            let mut details = summary(snapshot);
            details["merge"] = merge.into();
            By::cli()
                .event(EventType::DataImported)
                .details(details)
                .record(conn, now)?;
            Ok(())
        })
    })
}
