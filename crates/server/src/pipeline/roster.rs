//! Cluster mode: a roster change (case, order, device) made on another node reaches this
//! node's engine through the cluster's roster subject.

use super::PipelineHandle;
use futures_util::StreamExt;

/// Reloads this node's roster whenever another node announces a change.
pub async fn spawn_roster_listener(
    node: &crate::cluster_node::Node,
    pipeline: PipelineHandle,
) -> Result<tokio::task::JoinHandle<()>, crate::StartError> {
    let mut sub = node
        .client
        .subscribe(node.roster_subject())
        .await
        .map_err(|e| {
            crate::StartError::Cluster(format!("cannot subscribe to roster changes: {e}"))
        })?;
    Ok(tokio::spawn(async move {
        while sub.next().await.is_some() {
            pipeline.roster_changed_elsewhere();
        }
    }))
}
