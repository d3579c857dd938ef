//! The committed-event stream: one JetStream stream, one subject per partition.
//!
//! A node publishes a fix or device event only after PostgreSQL committed it, with
//! `Nats-Msg-Id` set to its store id. A node that crashed between commit and publish, or that
//! republishes a backlog after NATS came back, sends the same ids again, and the server drops
//! them inside its duplicate window; the store's ids are the final word beyond that window
//! (the engine ignores a fix id it has evaluated). A partition's owner reads its subject in
//! stream order from the sequence after its watermark.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::partition::Partition;
use crate::{ClusterError, sanitize};

/// How long the server remembers message ids for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A published message's place in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub sequence: u64,
    /// The server had this message id already: nothing new was stored.
    pub duplicate: bool,
}

/// One message read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream sequence; a partition's owner records it as its watermark once applied.
    pub sequence: u64,
    /// The `Nats-Msg-Id` it was published with.
    pub msg_id: Option<String>,
    pub payload: Bytes,
    /// Messages of this reader's subject still waiting after this one (the reader's lag).
    pub pending: u64,
}

/// The stream of committed events of one cluster.
#[derive(Clone)]
pub struct EventStream {
    js: jetstream::Context,
    name: String,
    subject_prefix: String,
}

impl EventStream {
    /// Opens the stream, creating it if needed. `max_age` bounds how long events are kept:
    /// the store is the source of truth, the stream only carries work between nodes, so a
    /// few hours cover any outage a node catches up from.
    pub async fn open(
        js: jetstream::Context,
        namespace: &str,
        max_age: Duration,
    ) -> Result<EventStream, ClusterError> {
        let ns = sanitize(namespace);
        let name = format!("{ns}_events");
        let subject_prefix = format!("{ns}.events");
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject_prefix}.*")],
            duplicate_window: DUPLICATE_WINDOW,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::Setup {
            what: format!("stream {name}"),
            reason: e.to_string(),
        })?;
        Ok(EventStream {
            js,
            name,
            subject_prefix,
        })
    }

    fn subject(&self, p: Partition) -> String {
        format!("{}.{}", self.subject_prefix, p.0)
    }

    /// Publishes one event and waits for the server to have stored it.
    pub async fn publish(
        &self,
        partition: Partition,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Published, ClusterError> {
        let subject = self.subject(partition);
        let fail = |reason: String| ClusterError::Publish {
            subject: subject.clone(),
            reason,
        };
        let ack = self
            .js
            .send_publish(
                subject.clone(),
                jetstream::message::PublishMessage::build()
                    .payload(payload)
                    .message_id(msg_id),
            )
            .await
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Reads one partition in stream order, starting after `watermark` (0: from the start).
    pub async fn read(
        &self,
        partition: Partition,
        watermark: u64,
    ) -> Result<impl Stream<Item = Result<Event, ClusterError>> + use<>, ClusterError> {
        let deliver_policy = if watermark == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: watermark + 1,
            }
        };
        self.read_from(partition, deliver_policy).await
    }

    /// Reads one partition in stream order from the first message the server stored at or
    /// after `unix_micros` (server clock). A partition's new owner starts here from the
    /// moment it took the lease minus a margin, so nothing committed before the takeover is
    /// missed; what overlaps with its rebuild from the store is dropped by store id.
    pub async fn read_since(
        &self,
        partition: Partition,
        unix_micros: i64,
    ) -> Result<impl Stream<Item = Result<Event, ClusterError>> + use<>, ClusterError> {
        let start_time = async_nats::datetime::from_nanos(i128::from(unix_micros) * 1_000)
            .map_err(|e| ClusterError::Read {
                partition,
                reason: format!("start time {unix_micros} µs: {e}"),
            })?;
        self.read_from(partition, consumer::DeliverPolicy::ByStartTime { start_time })
            .await
    }

    async fn read_from(
        &self,
        partition: Partition,
        deliver_policy: consumer::DeliverPolicy,
    ) -> Result<impl Stream<Item = Result<Event, ClusterError>> + use<>, ClusterError> {
        let read_error = |reason: String| ClusterError::Read { partition, reason };
        let stream = self
            .js
            .get_stream(&self.name)
            .await
            .map_err(|e| read_error(e.to_string()))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.subject(partition),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| read_error(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| read_error(e.to_string()))?;
        Ok(messages.map(move |m| {
            let m = m.map_err(|e| ClusterError::Read {
                partition,
                reason: e.to_string(),
            })?;
            let info = m.info().map_err(|e| ClusterError::Read {
                partition,
                reason: e.to_string(),
            })?;
            let sequence = info.stream_sequence;
            let pending = info.pending;
            let msg_id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_string());
            Ok(Event {
                sequence,
                msg_id,
                payload: m.payload.clone(),
                pending,
            })
        }))
    }

    /// The last sequence stored in the stream (0 when empty): how far a reader can lag.
    pub async fn last_sequence(&self) -> Result<u64, ClusterError> {
        let mut stream = self
            .js
            .get_stream(&self.name)
            .await
            .map_err(|e| ClusterError::Setup {
                what: format!("stream {}", self.name),
                reason: e.to_string(),
            })?;
        let info = stream.info().await.map_err(|e| ClusterError::Setup {
            what: format!("stream {}", self.name),
            reason: e.to_string(),
        })?;
        Ok(info.state.last_sequence)
    }
}
