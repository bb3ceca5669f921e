//! A Confluent-compatible schema registry client: `GET {url}/schemas/ids/{id}`, cached.
//!
//! Blocking on purpose: decoding runs on each topic's consumer thread, and a fetch happens once per
//! schema id for the life of the process.
//!
//! What the registry's answers mean ([`status_error`]):
//! - 404: the id is unknown: the record is quarantined (`unknown_schema_id`).
//! - 401, 403: our credentials are refused: a configuration error, fatal for the worker (retrying
//!   cannot fix it, and quarantining would throw good records away).
//! - 408, 429, 5xx, and connection errors or timeouts: the registry is unavailable for now: the
//!   record's partition waits and retries (never quarantined).
//! - any other 4xx (400, 405, 406, 410, 415, ...): the request is the same for every record but the
//!   id, so such an answer says the URL does not point at a usable registry (a wrong path, a proxy in
//!   the way): fatal, like 401/403, for the same reasons.

use super::DecodeError;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a "no such schema id" answer is remembered, so a flood of records with a bogus id does
/// not become a flood of registry requests.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

enum Cached {
    Found(Arc<Schema>),
    Missing(Instant),
}

pub struct Registry {
    base: String,
    /// `base` without a password, for messages.
    shown: String,
    agent: ureq::Agent,
    cache: Mutex<HashMap<u32, Cached>>,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

impl Registry {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        let base = base_url.trim_end_matches('/').to_owned();
        Self {
            shown: crate::config::redact_url(&base),
            base,
            agent,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The writer schema registered under `id`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownSchemaId`] if the registry says 404; [`DecodeError::RegistryUnavailable`]
    /// (retriable) if it cannot be reached, times out, or answers 408, 429 or 5xx;
    /// [`DecodeError::RegistryRefused`] or [`DecodeError::RegistryRejected`] (fatal) for 401/403 and
    /// other 4xx answers; [`DecodeError::BadWriterSchema`] if the schema it holds cannot be used.
    pub fn schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            match c {
                Cached::Found(s) => return Ok(s.clone()),
                Cached::Missing(at) if at.elapsed() < NEGATIVE_TTL => {
                    return Err(DecodeError::UnknownSchemaId(id))
                }
                Cached::Missing(_) => {}
            }
        }
        let fetched = self.fetch(id);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok(s) => {
                cache.insert(id, Cached::Found(s.clone()));
                Ok(s)
            }
            Err(DecodeError::UnknownSchemaId(id)) => {
                cache.insert(id, Cached::Missing(Instant::now()));
                Err(DecodeError::UnknownSchemaId(id))
            }
            Err(e) => Err(e),
        }
    }

    fn fetch(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let resp = self.agent.get(&url).call();
        let body: SchemaResponse = match resp {
            Ok(mut r) => r.body_mut().read_json().map_err(|e| {
                DecodeError::RegistryUnavailable(format!("{}/schemas/ids/{id}: {e}", self.shown))
            })?,
            Err(ureq::Error::StatusCode(code)) => return Err(status_error(&self.shown, id, code)),
            Err(e) => {
                return Err(DecodeError::RegistryUnavailable(format!(
                    "{}/schemas/ids/{id}: {e}",
                    self.shown
                )))
            }
        };
        if let Some(t) = body.schema_type.as_deref() {
            if t != "AVRO" {
                return Err(DecodeError::BadWriterSchema {
                    id,
                    message: format!("it is a {t} schema, not Avro"),
                });
            }
        }
        Schema::parse_str(&body.schema)
            .map(Arc::new)
            .map_err(|e| DecodeError::BadWriterSchema {
                id,
                message: e.to_string(),
            })
    }
}

/// What an HTTP error status from `GET {url}/schemas/ids/{id}` means (see the module's docs).
pub fn status_error(url: &str, id: u32, status: u16) -> DecodeError {
    match status {
        404 => DecodeError::UnknownSchemaId(id),
        401 | 403 => DecodeError::RegistryRefused {
            url: url.to_owned(),
            status,
        },
        408 | 429 | 500..=599 => {
            DecodeError::RegistryUnavailable(format!("{url}/schemas/ids/{id}: HTTP {status}"))
        }
        400..=499 => DecodeError::RegistryRejected {
            url: url.to_owned(),
            status,
        },
        // Not an error status at all (an unfollowed redirect, ...): treat as a passing hiccup.
        _ => DecodeError::RegistryUnavailable(format!("{url}/schemas/ids/{id}: HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_quarantine_retry_or_a_fatal_configuration_error() {
        let url = "http://registry:8081";
        let e = status_error(url, 7, 404);
        assert_eq!(e.reason(), "unknown_schema_id");
        assert!(!e.is_retriable() && !e.is_fatal());
        for status in [401, 403] {
            let e = status_error(url, 7, status);
            assert!(e.is_fatal() && !e.is_retriable(), "{status}");
            assert_eq!(
                e.to_string(),
                format!("the schema registry at {url} refused our credentials (HTTP {status}): check decode.schema_registry_url / its credentials")
            );
        }
        for status in [408, 429, 500, 502, 503, 504] {
            let e = status_error(url, 7, status);
            assert!(e.is_retriable() && !e.is_fatal(), "{status}");
            assert_eq!(e.reason(), "registry_unavailable");
        }
        for status in [400, 405, 406, 410, 415, 422] {
            let e = status_error(url, 7, status);
            assert!(e.is_fatal() && !e.is_retriable(), "{status}");
            assert!(e.to_string().contains("decode.schema_registry_url"), "{e}");
        }
    }

    #[test]
    fn messages_never_show_the_registry_password() {
        let r = Registry::new(
            "http://user:hunter2@127.0.0.1:1/",
            Duration::from_millis(200),
        );
        let e = r.schema(1).unwrap_err();
        assert!(e.is_retriable(), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!status_error(&r.shown, 1, 401)
            .to_string()
            .contains("hunter2"));
    }
}
