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
    pub clients: crate::admin::clients::ClientCache,
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
            self.clients.put(client, now);
        }
        Ok(loaded)
    }
}
