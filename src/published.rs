//! A document prepared once and served many times: its bytes, a strong ETag, and the header
//! values ready to copy into each response.

use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;

#[derive(Clone)]
pub struct Published {
    pub body: Bytes,
    pub etag: String,
    pub etag_header: HeaderValue,
}

impl Published {
    pub fn new(body: Vec<u8>) -> Self {
        let digest = crate::crypto::sha256(&body);
        let etag = format!("\"{}\"", crate::crypto::b64url(&digest[..16]));
        Self {
            body: Bytes::from(body),
            etag_header: HeaderValue::from_str(&etag).expect("base64url is a valid header value"),
            etag,
        }
    }
}
