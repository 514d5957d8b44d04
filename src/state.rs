//! What every handler receives through `web::Data`: settings, the pool, the master key, the
//! keyring, the clock and the prepared documents. No global statics.

use std::sync::Arc;

use crate::admin::clients;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::keyring::Keyring;
use crate::crypto::master_key::MasterKey;
use crate::oauth::client_metadata::Client;
use crate::published::Published;
use crate::storage::{Database, StorageError};

pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub master: MasterKey,
    pub keyring: Arc<Keyring>,
    pub clock: Clock,
    pub discovery: Published,
    pub discovery_cache_control: actix_web::http::header::HeaderValue,
    pub jwks_cache_control: actix_web::http::header::HeaderValue,
    pub passwords: crate::crypto::password::PasswordPool,
    /// Refusals at the login form wait here (`login.refusal_delay`).
    pub tarpit: crate::web::throttle::Tarpit,
    pub clients: crate::admin::clients::ClientCache,
    /// Resource servers (RFC 8707), cached like clients.
    pub resources: crate::admin::resources::ResourceCache,
    /// Requests Sigil makes itself (client `jwks_uri`, back-channel logout), with SSRF rules.
    pub outbound: crate::outbound::Outbound,
    /// Cached introspection answers for live access tokens, dropped when tokens change.
    pub verdicts: Arc<crate::tokens::verdicts::Verdicts>,
    /// Request counters and latencies for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Clients' encryption keys fetched from their `jwks_uri`.
    pub encryption_keys: crate::tokens::jwe::JwksCache,
    /// `private_key_jwt` clients' verifying keys (`jwks`, cached `jwks_uri` fetches).
    pub client_keys: crate::oauth::client_key_cache::ClientKeyCache,
    /// The WebAuthn relying party for passkeys (`web::passkeys`); `None` when the issuer's host
    /// is not a domain name.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// DPoP (RFC 9449): the nonce key and this node's store of proof ids.
    pub dpop: crate::oauth::dpop::Dpop,
}

impl AppState {
    /// A client from this node's cache, or from the database (and then cached).
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, StorageError> {
        let now = self.clock.now();
        if let Some(client) = self.clients.get(client_id, now) {
            return Ok(Some(client));
        }
        let (id, master) = (client_id.to_string(), self.master.clone());
        let loaded = self
            .db
            .run(move |conn| clients::load(conn, &master, &id))
            .await?;
        if let Some(client) = &loaded {
            self.clients.put(&client.client_id, client, now);
        }
        Ok(loaded)
    }

    /// A registered resource server from this node's cache, or from the database.
    pub async fn resource(
        &self,
        uri: &str,
    ) -> Result<Option<crate::oauth::resource_metadata::ResourceMetadata>, StorageError> {
        let now = self.clock.now();
        if let Some(found) = self.resources.get(uri, now) {
            return Ok(Some(found));
        }
        let uri = uri.to_string();
        let loaded = self
            .db
            .run(move |conn| crate::admin::resources::load(conn, &uri))
            .await?;
        if let Some(found) = &loaded {
            self.resources.put(&found.resource, found, now);
        }
        Ok(loaded)
    }
}
