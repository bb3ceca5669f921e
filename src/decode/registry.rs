//! A Confluent-compatible schema registry client: `GET {url}/schemas/ids/{id}`, cached.
//!
//! Blocking on purpose: decoding runs on each topic's consumer thread, and a fetch happens once per
//! schema id for the life of the process.

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
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            agent,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The writer schema registered under `id`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownSchemaId`] if the registry says 404; [`DecodeError::RegistryUnavailable`]
    /// (retriable) if it cannot be reached or answers with a server error.
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
            Ok(mut r) => r
                .body_mut()
                .read_json()
                .map_err(|e| DecodeError::RegistryUnavailable(format!("{url}: {e}")))?,
            Err(ureq::Error::StatusCode(404)) => return Err(DecodeError::UnknownSchemaId(id)),
            Err(ureq::Error::StatusCode(code)) if (400..500).contains(&code) => {
                return Err(DecodeError::BadWriterSchema {
                    id,
                    message: format!("the registry answered {code}"),
                })
            }
            Err(e) => return Err(DecodeError::RegistryUnavailable(format!("{url}: {e}"))),
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
