//! The ETags of resources this client has read, for `If-Match` on its next write to them.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::header;

#[derive(Default)]
pub(super) struct Etags(Mutex<HashMap<String, String>>);

impl Etags {
    pub(super) fn get(&self, path: &str) -> Option<String> {
        self.0.lock().expect("etag lock").get(path).cloned()
    }

    pub(super) fn remember(&self, path: &str, response: &http::Response<Bytes>) {
        if let Some(etag) = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
        {
            self.0
                .lock()
                .expect("etag lock")
                .insert(path.to_owned(), etag.to_owned());
        }
    }
}
