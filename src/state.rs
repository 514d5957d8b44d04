//! What every handler receives through `web::Data`: settings, the pool, the master key, the
//! keyring, the clock and the prepared documents. No global statics.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::keyring::Keyring;
use crate::crypto::master_key::MasterKey;
use crate::published::Published;
use crate::storage::Database;

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
