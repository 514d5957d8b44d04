//! Real client libraries against a running Sigil: openid-client 6 (Node, `tests/node`, installed
//! by `scripts/install-deps.sh`) for dynamic registration, pushed and signed authorization
//! requests, DPoP and the device authorization grant, and Authlib (Python) for token exchange.
//! Each library script talks with its test over stdin/stdout (`tests/node/lib.mjs`): the test
//! plays the browser and the administrator, the library does everything a relying party does.

mod device;
mod dpop;
mod node;
mod par_and_request_objects;
mod registration;
mod token_exchange;
