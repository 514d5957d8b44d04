//! The protocol, free of actix and diesel: request parsing into typed values, the error type,
//! scopes, client metadata and client authentication.

pub mod authorize_request;
pub mod client_assertion;
pub mod client_auth;
pub mod client_key_cache;
pub mod client_keys;
pub mod client_metadata;
pub mod device;
pub mod dpop;
pub mod error;
pub mod form;
pub mod groups;
pub mod jwk_set;
pub mod pkce;
pub mod request_object;
pub mod resource_metadata;
pub mod scope;
pub mod token_request;

pub use error::{ErrorCode, OAuthError};
