//! What happens to the model's answer on its way back: placeholders from the
//! request's redaction are restored, and the proxy's policies scan the text at
//! `response`, incrementally for streams, blocking when a rule says so.

use crate::runtime::ProxyRuntime;
use portcullis_policy::redact::{Redactor, StreamRestorer};
use portcullis_policy::stream_scan::StreamScanner;
use portcullis_policy::{Action, Location};
use portcullis_protocol::answer::TextFilter;
use std::sync::Arc;

pub struct AnswerFilter {
    proxy: Arc<ProxyRuntime>,
    scanner: Option<StreamScanner>,
    restorer: Option<StreamRestorer>,
    /// Findings met in the answer, as stored in the event.
    pub findings: Vec<serde_json::Value>,
}

impl AnswerFilter {
    /// `None` when there is nothing to restore and no policy looks at responses.
    pub fn new(proxy: &Arc<ProxyRuntime>, redactor: Option<&Arc<Redactor>>) -> Option<Self> {
        let scans = proxy
            .policy
            .as_ref()
            .is_some_and(|e| e.applies_at(Location::Response));
        let restorer = redactor.filter(|r| !r.is_empty()).map(|r| r.streaming());
        (scans || restorer.is_some()).then(|| AnswerFilter {
            proxy: proxy.clone(),
            scanner: scans.then(|| StreamScanner::new(Location::Response)),
            restorer,
            findings: Vec::new(),
        })
    }

    /// Scans the model's own words (placeholders, not the restored values: those
    /// are the caller's data), then restores. `None` scans what the scanner still
    /// holds unread, at the end of a run of text.
    fn scan(&mut self, piece: Option<&str>) -> Result<(), String> {
        let (Some(scanner), Some(engine)) = (self.scanner.as_mut(), self.proxy.policy.as_ref())
        else {
            return Ok(());
        };
        let found = match piece {
            Some(piece) => scanner.push(engine, piece),
            None => scanner.finish(engine),
        };
        let mut blocking = Vec::new();
        for finding in found {
            if finding.action == Action::Block {
                blocking.push(finding.rule_id.to_string());
            }
            self.findings.push(crate::relay::finding_json(&finding));
        }
        if blocking.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "response blocked by policy: {}",
                blocking.join(", ")
            ))
        }
    }
}

impl TextFilter for AnswerFilter {
    fn filter(&mut self, piece: &str) -> Result<String, String> {
        self.scan(Some(piece))?;
        Ok(match self.restorer.as_mut() {
            Some(r) => r.push(piece),
            None => piece.to_owned(),
        })
    }

    fn finish(&mut self) -> Result<String, String> {
        self.scan(None)?;
        Ok(self
            .restorer
            .as_mut()
            .map(StreamRestorer::finish)
            .unwrap_or_default())
    }

    fn take_findings(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.findings)
    }
}
