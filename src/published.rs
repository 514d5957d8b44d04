//! A document prepared once and served many times: its bytes and a strong ETag.

use actix_web::web::Bytes;

#[derive(Clone)]
pub struct Published {
    pub body: Bytes,
    pub etag: String,
}

impl Published {
    pub fn new(body: Vec<u8>) -> Self {
        let digest = crate::crypto::sha256(&body);
        let etag = format!("\"{}\"", crate::crypto::b64url(&digest[..16]));
        Self {
            body: Bytes::from(body),
            etag,
        }
    }
}
