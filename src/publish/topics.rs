//! The dead-letter topics: created by the worker (brokers run with `auto.create.topics.enable=false`
//! in production, and an auto-created topic would get the broker's defaults rather than ours), and
//! asked for their `max.message.bytes` when they reject a message as too large.

use super::PublishError;
use crate::config::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::time::Duration;
use tracing::info;

/// Admin operations on the dead-letter topics, with the partition count and replication factor of
/// the settings.
pub struct DlqTopics {
    admin: AdminClient<DefaultClientContext>,
    partitions: i32,
    replication: i32,
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)))
}

impl DlqTopics {
    /// # Errors
    /// Invalid Kafka settings.
    pub fn new(s: &KafkaSettings) -> Result<Self, PublishError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &s.brokers)
            .set("client.id", "esurio-dlq-admin");
        for (k, v) in &s.librdkafka {
            c.set(k, v);
        }
        Ok(Self {
            admin: c.create().map_err(PublishError::Client)?,
            partitions: s.dlq_partitions,
            replication: s.dlq_replication_factor,
        })
    }

    /// Creates the topics that do not exist yet; one that exists already counts as created (its
    /// partitions and configuration are left as they are). Returns the error of each topic that
    /// could not be created.
    ///
    /// # Errors
    /// The request itself failed (broker unreachable).
    pub async fn create(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, PublishError)>, PublishError> {
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let results = self
            .admin
            .create_topics(&new, &options())
            .await
            .map_err(PublishError::Client)?;
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok(name) => info!(
                    topic = %name,
                    partitions = self.partitions,
                    replication_factor = self.replication,
                    "Created a dead-letter topic."
                ),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => failed.push((
                    name.clone(),
                    PublishError::CreateTopic { topic: name, code },
                )),
            }
        }
        Ok(failed)
    }

    /// The topic's `max.message.bytes` as the broker reports it.
    ///
    /// # Errors
    /// The broker cannot be asked, or does not report the setting.
    pub async fn max_message_bytes(&self, topic: &str) -> Result<usize, PublishError> {
        let spec = ResourceSpecifier::Topic(topic);
        let answer = self
            .admin
            .describe_configs([&spec], &options())
            .await
            .map_err(PublishError::Client)?;
        answer
            .into_iter()
            .filter_map(Result::ok)
            .find_map(|r| {
                r.get("max.message.bytes")
                    .and_then(|e| e.value.as_deref())
                    .and_then(|v| v.parse().ok())
            })
            .ok_or_else(|| PublishError::NoTopicLimit(topic.to_owned()))
    }
}
