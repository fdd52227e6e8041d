//! Shard leases and checkpoints in a DynamoDB table laid out like the Kinesis Client Library's,
//! so operators recognise it: one item per shard, hash key `leaseKey` (the shard id), with
//! `leaseOwner`, `leaseCounter`, `checkpoint` (a sequence number or `TRIM_HORIZON`,
//! `AT_TIMESTAMP`, `SHARD_END`), `checkpointSubSequenceNumber`, `ownerSwitchesSinceCheckpoint`
//! and `parentShardId` (a string set). Three attributes are ours: `watermark` (the shard's
//! event-time watermark in epoch ms, saved with each checkpoint), `idleWatermark` (the
//! processing-time floor of an idle shard, or the largest number once a finite run drained it)
//! and `startingTimestamp` (for an `AT_TIMESTAMP` start).
//!
//! Every write that changes a lease is conditional on the `leaseCounter` this worker last saw
//! and bumps it (KCL's fencing): a worker whose write fails has lost the lease and drops the
//! shard at once. Whether a lease has expired is judged by each worker's own monotonic clock
//! (the counter has not moved for the failover time), never by comparing hosts' wall clocks.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use crate::job::model::JobError;

pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
pub const SHARD_END: &str = "SHARD_END";

/// One lease as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard: String,
    pub owner: Option<String>,
    pub counter: u64,
    pub checkpoint: String,
    pub parents: Vec<String>,
    pub watermark_ms: i64,
    pub idle_watermark_ms: i64,
    pub starting_timestamp_ms: Option<i64>,
}

impl Lease {
    pub fn is_ended(&self) -> bool {
        self.checkpoint == SHARD_END
    }

    /// Windows that ended (plus lateness) before this are closed for the shard.
    pub fn effective_watermark_ms(&self) -> i64 {
        self.watermark_ms.max(self.idle_watermark_ms)
    }
}

/// The watermark every window must be closed under to be final: the smallest of the shards
/// still to be read; `None` before any lease exists. A shard at `SHARD_END` no longer counts
/// once a child lease names it as a parent, but until then it does, with its event watermark:
/// its children (not yet leased) start from that watermark and may still hold records of any
/// window after it. The table may be a little stale: every value in it only grows.
pub fn closing_watermark(leases: &[Lease]) -> Option<i64> {
    if leases.is_empty() {
        return None;
    }
    let has_child = |shard: &str| leases.iter().any(|l| l.parents.iter().any(|p| p == shard));
    Some(
        leases
            .iter()
            .filter_map(|l| match l.is_ended() {
                false => Some(l.effective_watermark_ms()),
                true if has_child(&l.shard) => None,
                true => Some(l.watermark_ms),
            })
            .min()
            .unwrap_or(i64::MAX),
    )
}

/// A conditional write lost: someone else changed the lease first.
#[derive(Debug)]
pub enum LeaseError {
    Lost,
    Failed(JobError),
}

pub struct LeaseTable {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl LeaseTable {
    pub fn new(config: &aws_config::SdkConfig, table: &str) -> LeaseTable {
        LeaseTable {
            client: Client::new(config),
            table: table.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    fn failed<E, R>(&self, what: &str, error: SdkError<E, R>) -> JobError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        JobError::Other(format!(
            "lease table {}: {what}: {}",
            self.table,
            super::kinesis::sdk_error(&error)
        ))
    }

    /// Creates the table (on-demand capacity) when it does not exist, and waits until it is
    /// active.
    pub async fn ensure(&self) -> Result<(), JobError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(self.failed("cannot describe it", e)),
        };
        if !exists {
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("leaseKey")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("name and type are set"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("leaseKey")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("name and type are set"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Another worker created it first.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                Err(e) => return Err(self.failed("cannot create it", e)),
            }
        }
        for _ in 0..120 {
            let description = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.failed("cannot describe it", e))?;
            if description.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(JobError::Other(format!(
            "lease table {}: not active after 60 s",
            self.table
        )))
    }

    /// Every lease, read consistently.
    pub async fn scan(&self) -> Result<Vec<Lease>, JobError> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.failed("cannot scan it", e))?;
            for item in page.items() {
                if let Some(lease) = parse_lease(item) {
                    leases.push(lease);
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        leases.sort_by(|a, b| a.shard.cmp(&b.shard));
        Ok(leases)
    }

    /// Creates a shard's lease unless it exists; `true` when this call created it.
    pub async fn create(
        &self,
        shard: &str,
        checkpoint: &str,
        parents: &[String],
        watermark_ms: i64,
        starting_timestamp_ms: Option<i64>,
    ) -> Result<bool, JobError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("leaseKey", s(shard))
            .item("leaseCounter", n(0))
            .item("checkpoint", s(checkpoint))
            .item("checkpointSubSequenceNumber", n(0))
            .item("ownerSwitchesSinceCheckpoint", n(0))
            .item("watermark", n(watermark_ms))
            .condition_expression("attribute_not_exists(leaseKey)");
        if !parents.is_empty() {
            request = request.item("parentShardId", AttributeValue::Ss(parents.to_vec()));
        }
        if let Some(ms) = starting_timestamp_ms {
            request = request.item("startingTimestamp", n(ms));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(self.failed(&format!("cannot create the lease of {shard}"), e)),
        }
    }

    /// Takes a lease seen at `counter` (expired, unowned, or stolen); returns the new counter.
    pub async fn take(&self, lease: &Lease, me: &str) -> Result<u64, LeaseError> {
        let next = lease.counter + 1;
        let mut update = "SET leaseOwner = :me, leaseCounter = :next".to_string();
        if lease.owner.as_deref() != Some(me) {
            update.push_str(", ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :one");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("leaseKey", s(&lease.shard))
            .update_expression(update)
            .condition_expression("leaseCounter = :seen")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":seen", n(lease.counter));
        if lease.owner.as_deref() != Some(me) {
            request = request.expression_attribute_values(":one", n(1));
        }
        self.conditional(request, &lease.shard, "take").await?;
        Ok(next)
    }

    /// An update of a lease this worker holds at `counter`: applies `set` (after the counter's
    /// bump) only while the lease is still this worker's at that counter (KCL's fencing).
    fn held_update(
        &self,
        shard: &str,
        me: &str,
        counter: u64,
        set: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("leaseKey", s(shard))
            .update_expression(format!("SET leaseCounter = :next{set}"))
            .condition_expression("leaseCounter = :seen AND leaseOwner = :me")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":next", n(counter + 1))
            .expression_attribute_values(":seen", n(counter))
    }

    /// Renews a lease this worker holds at `counter`; returns the new counter.
    pub async fn renew(&self, shard: &str, me: &str, counter: u64) -> Result<u64, LeaseError> {
        let request = self.held_update(shard, me, counter, "");
        self.conditional(request, shard, "renew").await?;
        Ok(counter + 1)
    }

    /// Saves a checkpoint (a sequence number or `SHARD_END`) and the watermark; returns the
    /// new counter.
    pub async fn checkpoint(
        &self,
        shard: &str,
        me: &str,
        counter: u64,
        checkpoint: &str,
        watermark_ms: i64,
    ) -> Result<u64, LeaseError> {
        let request = self
            .held_update(
                shard,
                me,
                counter,
                ", checkpoint = :checkpoint, watermark = :watermark, \
                 checkpointSubSequenceNumber = :zero, ownerSwitchesSinceCheckpoint = :zero",
            )
            .expression_attribute_values(":checkpoint", s(checkpoint))
            .expression_attribute_values(":watermark", n(watermark_ms))
            .expression_attribute_values(":zero", n(0));
        self.conditional(request, shard, "checkpoint").await?;
        Ok(counter + 1)
    }

    /// Raises the shard's idle floor (see the module comment); returns the new counter.
    pub async fn set_idle_watermark(
        &self,
        shard: &str,
        me: &str,
        counter: u64,
        idle_watermark_ms: i64,
    ) -> Result<u64, LeaseError> {
        let request = self
            .held_update(shard, me, counter, ", idleWatermark = :idle")
            .expression_attribute_values(":idle", n(idle_watermark_ms));
        self.conditional(request, shard, "save the idle watermark of")
            .await?;
        Ok(counter + 1)
    }

    /// Gives a lease up (graceful stop) so that another worker takes it without waiting for
    /// it to expire.
    pub async fn release(&self, shard: &str, me: &str, counter: u64) -> Result<(), LeaseError> {
        let request = self.held_update(shard, me, counter, " REMOVE leaseOwner");
        self.conditional(request, shard, "release").await
    }

    async fn conditional(
        &self,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        shard: &str,
        what: &str,
    ) -> Result<(), LeaseError> {
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(LeaseError::Lost),
            Err(e) => Err(LeaseError::Failed(
                self.failed(&format!("cannot {what} the lease of {shard}"), e),
            )),
        }
    }
}

fn is_conditional_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

fn parse_lease(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    Some(Lease {
        shard: text("leaseKey")?,
        owner: text("leaseOwner").filter(|o| !o.is_empty()),
        counter: number("leaseCounter").unwrap_or(0).max(0) as u64,
        checkpoint: text("checkpoint").unwrap_or_else(|| TRIM_HORIZON.to_string()),
        parents: item
            .get("parentShardId")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        watermark_ms: number("watermark").unwrap_or(i64::MIN),
        idle_watermark_ms: number("idleWatermark").unwrap_or(i64::MIN),
        starting_timestamp_ms: number("startingTimestamp"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, checkpoint: &str, parents: &[&str], watermark: i64, idle: i64) -> Lease {
        Lease {
            shard: shard.to_string(),
            owner: None,
            counter: 0,
            checkpoint: checkpoint.to_string(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            watermark_ms: watermark,
            idle_watermark_ms: idle,
            starting_timestamp_ms: None,
        }
    }

    #[test]
    fn the_closing_watermark_waits_for_an_ended_shards_children() {
        assert_eq!(closing_watermark(&[]), None);
        let open = lease("b", "7", &[], 900, i64::MIN);
        let drained = lease("c", "9", &[], 100, i64::MAX);
        assert_eq!(
            closing_watermark(&[open.clone(), drained.clone()]),
            Some(900)
        );
        // A split parent at its end, children not leased yet: it bounds with its event time.
        let parent = lease("a", SHARD_END, &[], 500, i64::MAX);
        assert_eq!(
            closing_watermark(&[parent.clone(), open.clone()]),
            Some(500)
        );
        // Once a child is leased, the child bounds instead.
        let child = lease("d", TRIM_HORIZON, &["a"], 500, i64::MIN);
        let later = lease("d", "12", &["a"], 1000, i64::MIN);
        assert_eq!(
            closing_watermark(&[parent.clone(), child, open.clone()]),
            Some(500)
        );
        assert_eq!(closing_watermark(&[parent, later, open]), Some(900));
        // Everything ended and handed on, or drained: every window closes.
        assert_eq!(closing_watermark(&[drained]), Some(i64::MAX));
    }
}
