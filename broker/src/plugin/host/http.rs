//! The `http` capability (contract v0.2.0 on): requests to the calling
//! mount's service only, on its base URL's origin
//! ([`crate::egress::http`]).

use crate::egress::http::{HttpError, HttpRequest, HttpResponse};
use crate::plugin::HostCapability;
use crate::plugin::state::CallState;

/// The most requests one call may send.
const MAX_REQUESTS_PER_CALL: u32 = 32;

impl CallState {
    pub(crate) async fn http_send(
        &mut self,
        request: HttpRequest,
    ) -> Result<HttpResponse, HttpError> {
        if !self.capabilities.contains(&HostCapability::Http) {
            self.refused("http", "the plugin does not import http");
            return Err(HttpError::Denied("the plugin does not import http".into()));
        }
        let Some(binding) = self.http.clone() else {
            return Err(HttpError::Denied(
                "this mount has no HTTP service configured".into(),
            ));
        };
        if self.http_requests >= MAX_REQUESTS_PER_CALL {
            return Err(HttpError::Limit(format!(
                "at most {MAX_REQUESTS_PER_CALL} HTTP requests per call"
            )));
        }
        self.http_requests += 1;
        let result = binding
            .clients
            .send(&binding.key, &binding.target, request, self.deadline)
            .await;
        match &result {
            Err(e @ (HttpError::Denied(_) | HttpError::Limit(_))) => {
                self.refused("http", &e.to_string());
            }
            Err(HttpError::Unavailable(m)) if m.contains("deadline") => self.deadline_hit = true,
            _ => {}
        }
        result
    }
}
