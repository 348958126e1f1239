//! Keeps recent requests so tests can assert on what the gateway forwarded.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// Per-request cap on the stored body: enough for any test assertion, small
/// enough that recording stays cheap under benchmark load.
pub(crate) const RECORD_BODY_LIMIT: usize = 64 * 1024;

/// A request as the mock received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query string, as sent.
    pub path: String,
    /// In arrival order, names lower-cased, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Lossy UTF-8 of at most the first 64 KiB.
    pub body: String,
}

pub(crate) struct Recorder {
    limit: usize,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            requests: Mutex::new(VecDeque::with_capacity(limit.min(1024))),
        }
    }

    /// A panicking test thread must not take inspection down with it.
    fn lock(&self) -> MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record(&self, parts: &http::request::Parts, body: &[u8]) {
        if self.limit == 0 {
            return;
        }
        // Build outside the lock; the lock is only held for the push.
        let request = RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
                .to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: String::from_utf8_lossy(&body[..body.len().min(RECORD_BODY_LIMIT)]).into_owned(),
        };
        let mut requests = self.lock();
        while requests.len() >= self.limit {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> http::request::Parts {
        let (parts, ()) = http::Request::post(path)
            .header("x-test", "1")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn keeps_the_newest_up_to_the_limit() {
        let rec = Recorder::new(2);
        for path in ["/a", "/b?x=1", "/c"] {
            rec.record(&parts(path), b"body");
        }
        let got: Vec<String> = rec.snapshot().into_iter().map(|r| r.path).collect();
        assert_eq!(got, ["/b?x=1", "/c"]);
        rec.clear();
        assert!(rec.snapshot().is_empty());
    }

    #[test]
    fn caps_the_body() {
        let rec = Recorder::new(1);
        rec.record(&parts("/a"), &vec![b'x'; RECORD_BODY_LIMIT + 10]);
        let got = rec.snapshot();
        assert_eq!(got[0].body.len(), RECORD_BODY_LIMIT);
        assert_eq!(got[0].headers, [("x-test".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn zero_limit_records_nothing() {
        let rec = Recorder::new(0);
        rec.record(&parts("/a"), b"");
        assert!(rec.snapshot().is_empty());
    }
}
