//! The outbox and its sender. A reply is a row first (enqueued under a
//! key that makes enqueueing idempotent), then the sender delivers it
//! through its [`Channel`], retrying with backoff (a peer's `Retry-After`
//! is honoured) until it is sent or, after the last try, `failed` with the
//! peer's answer. One item's rows go out in order; a row that updates the
//! placeholder waits for it and receives its external reference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use tokio::sync::Notify;

use crate::config::DeliveryConfig;
use crate::{Channel, Outgoing};
use warden_db::entities::channel_outbox::{self, Column, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Failed,
    /// A progress note replaced by a later one before it went out.
    Superseded,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Sending,
        OutboxStatus::Sent,
        OutboxStatus::Failed,
        OutboxStatus::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Superseded => "superseded",
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered; the peer's name for the message (Slack `ts`), if any.
    Sent { external_ref: Option<String> },
    /// Worth another try (rate limited, the peer or the network failing).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The peer refused it for good (`channel_not_found`, `invalid_auth`).
    Failed(String),
}

/// The dedupe key of an item's placeholder row.
pub fn placeholder_key(inbox_id: &str) -> String {
    format!("{inbox_id}:placeholder")
}

/// Marks `progress` rows in its key, so a later note can replace them.
const PROGRESS_MARK: &str = ":progress:";
/// Marks an item's outcome rows (the dispatcher's keys).
pub const OUTCOME_MARK: &str = ":outcome:";
/// Marks the apology of an item that was given up.
pub const FAILED_MARK: &str = ":failed:";

#[derive(Clone)]
pub struct Outbox {
    db: DatabaseConnection,
}

/// Where a row belongs.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub channel: &'a str,
    pub connection: &'a str,
    pub inbox_id: Option<&'a str>,
}

impl<'a> Route<'a> {
    /// Rows of `channel`'s connection, for inbox item `inbox_id` if any.
    pub fn new(channel: &'a dyn Channel, inbox_id: Option<&'a str>) -> Self {
        Self {
            channel: channel.channel(),
            connection: channel.connection(),
            inbox_id,
        }
    }
}

impl Outbox {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Queues `out` under `key` (a no-op when the key is already queued:
    /// processing an item again never sends its replies twice). A progress
    /// note replaces the item's progress notes that have not gone yet.
    pub async fn enqueue(
        db: &impl ConnectionTrait,
        route: Route<'_>,
        key: &str,
        out: &Outgoing,
    ) -> Result<(), DbErr> {
        let after_id = match (out.after_placeholder, route.inbox_id) {
            (true, Some(inbox)) => channel_outbox::Entity::find()
                .filter(Column::Channel.eq(route.channel))
                .filter(Column::Connection.eq(route.connection))
                .filter(Column::DedupeKey.eq(placeholder_key(inbox)))
                .one(db)
                .await?
                .map(|r| r.id),
            _ => None,
        };
        if let Some(inbox) = route.inbox_id {
            // Nothing said earlier about progress matters once something
            // newer is queued (a later note, or the outcome).
            channel_outbox::Entity::update_many()
                .col_expr(
                    Column::Status,
                    Expr::value(OutboxStatus::Superseded.as_str()),
                )
                .filter(Column::InboxId.eq(inbox))
                .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
                .filter(Column::DedupeKey.contains(PROGRESS_MARK))
                .exec(db)
                .await?;
        }
        let key = if out.progress && !key.contains(PROGRESS_MARK) {
            format!("{key}{PROGRESS_MARK}")
        } else {
            key.to_owned()
        };
        let now = Utc::now();
        let row = channel_outbox::ActiveModel {
            channel: Set(route.channel.to_owned()),
            connection: Set(route.connection.to_owned()),
            inbox_id: Set(route.inbox_id.map(str::to_owned)),
            dedupe_key: Set(key),
            kind: Set(out.kind.clone()),
            target: Set(out.target.to_string()),
            body: Set(out.body.to_string()),
            after_id: Set(after_id),
            status: Set(OutboxStatus::Pending.as_str().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            external_ref: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        channel_outbox::Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Channel, Column::Connection, Column::DedupeKey])
            .exec(db)
            .await?;
        Ok(())
    }

    /// Whether `key` is queued (in any state).
    pub async fn has(&self, channel: &str, connection: &str, key: &str) -> Result<bool, DbErr> {
        Ok(channel_outbox::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Connection.eq(connection))
            .filter(Column::DedupeKey.eq(key))
            .count(&self.db)
            .await?
            > 0)
    }

    /// An item's rows, in order.
    pub async fn for_inbox(&self, inbox_id: &str) -> Result<Vec<Model>, DbErr> {
        channel_outbox::Entity::find()
            .filter(Column::InboxId.eq(inbox_id))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await
    }

    pub async fn count(&self, channel: &str, status: OutboxStatus) -> Result<u64, DbErr> {
        self.count_where(channel, None, status).await
    }

    /// Rows per status of one connection, for its health.
    pub async fn counts(
        &self,
        channel: &str,
        connection: &str,
    ) -> Result<Vec<(&'static str, u64)>, DbErr> {
        let mut out = Vec::new();
        for s in OutboxStatus::ALL {
            out.push((
                s.as_str(),
                self.count_where(channel, Some(connection), s).await?,
            ));
        }
        Ok(out)
    }

    /// The connection's most recent failed rows, newest first.
    pub async fn failures(
        &self,
        channel: &str,
        connection: &str,
        limit: u64,
    ) -> Result<Vec<Model>, DbErr> {
        channel_outbox::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Connection.eq(connection))
            .filter(Column::Status.eq(OutboxStatus::Failed.as_str()))
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    async fn count_where(
        &self,
        channel: &str,
        connection: Option<&str>,
        status: OutboxStatus,
    ) -> Result<u64, DbErr> {
        let mut q = channel_outbox::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Status.eq(status.as_str()));
        if let Some(c) = connection {
            q = q.filter(Column::Connection.eq(c));
        }
        q.count(&self.db).await
    }

    /// Rows a stopped server left `sending` are tried again. (The peer may
    /// have received one already: delivery is at least once for the row
    /// in flight at a crash, exactly once otherwise.)
    pub async fn recover(&self) -> Result<u64, DbErr> {
        Ok(channel_outbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(OutboxStatus::Pending.as_str()))
            .filter(Column::Status.eq(OutboxStatus::Sending.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Rows left `sending` for longer than any delivery takes (a
    /// delivery whose outcome could not be recorded) are tried again.
    pub async fn recover_stale(&self, older_than: Duration) -> Result<u64, DbErr> {
        let cutoff = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
        Ok(channel_outbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(OutboxStatus::Pending.as_str()))
            .filter(Column::Status.eq(OutboxStatus::Sending.as_str()))
            .filter(Column::UpdatedAt.lt(cutoff))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Whether the item's outcome is queued: its progress notes are then
    /// moot (and must not overwrite the answer they would follow).
    async fn concluded(&self, inbox: &str) -> Result<bool, DbErr> {
        Ok(channel_outbox::Entity::find()
            .filter(Column::InboxId.eq(inbox))
            .filter(
                sea_orm::Condition::any()
                    .add(Column::DedupeKey.contains(OUTCOME_MARK))
                    .add(Column::DedupeKey.contains(FAILED_MARK)),
            )
            .count(&self.db)
            .await?
            > 0)
    }

    async fn supersede(&self, id: i64) -> Result<(), DbErr> {
        channel_outbox::Entity::update_many()
            .col_expr(
                Column::Status,
                Expr::value(OutboxStatus::Superseded.as_str()),
            )
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Due rows, oldest first.
    async fn due(&self, limit: u64) -> Result<Vec<Model>, DbErr> {
        channel_outbox::Entity::find()
            .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(Column::NextAttemptAt.lte(Utc::now()))
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Whether an earlier row of the same item has not gone yet.
    async fn blocked_by_earlier(&self, row: &Model) -> Result<bool, DbErr> {
        let Some(inbox) = &row.inbox_id else {
            return Ok(false);
        };
        Ok(channel_outbox::Entity::find()
            .filter(Column::InboxId.eq(inbox.as_str()))
            .filter(Column::Id.lt(row.id))
            .filter(Column::Status.is_in([
                OutboxStatus::Pending.as_str(),
                OutboxStatus::Sending.as_str(),
            ]))
            .count(&self.db)
            .await?
            > 0)
    }

    async fn claim(&self, id: i64) -> Result<bool, DbErr> {
        Ok(channel_outbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(OutboxStatus::Sending.as_str()))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected
            == 1)
    }

    async fn mark(
        &self,
        id: i64,
        status: OutboxStatus,
        attempts: i32,
        next: chrono::DateTime<Utc>,
        error: Option<&str>,
        external_ref: Option<&str>,
    ) -> Result<(), DbErr> {
        let mut update = channel_outbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::Attempts, Expr::value(attempts))
            .col_expr(Column::NextAttemptAt, Expr::value(next))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id));
        if let Some(e) = error {
            update = update.col_expr(Column::LastError, Expr::value(e));
        }
        if let Some(r) = external_ref {
            update = update.col_expr(Column::ExternalRef, Expr::value(r));
        }
        update.exec(&self.db).await?;
        Ok(())
    }
}

/// Longer than any delivery may take (transports time out well before).
const STALE_SENDING: Duration = Duration::from_secs(120);

/// Delivers due outbox rows through their connections.
pub struct Sender {
    outbox: Outbox,
    db: DatabaseConnection,
    channels: HashMap<(String, String), Arc<dyn Channel>>,
    config: DeliveryConfig,
    wake: Notify,
}

impl Sender {
    pub fn new(
        db: DatabaseConnection,
        channels: &[Arc<dyn Channel>],
        config: DeliveryConfig,
    ) -> Self {
        Self {
            outbox: Outbox::new(db.clone()),
            db,
            channels: channels
                .iter()
                .map(|c| {
                    (
                        (c.channel().to_owned(), c.connection().to_owned()),
                        c.clone(),
                    )
                })
                .collect(),
            config,
            wake: Notify::new(),
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Something was queued: look now rather than at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers until the process ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.outbox.recover().await {
                tracing::warn!(error = %e, "outbox: cannot reset rows left sending");
            }
            let mut last_sweep = tokio::time::Instant::now();
            loop {
                if last_sweep.elapsed() >= STALE_SENDING {
                    last_sweep = tokio::time::Instant::now();
                    if let Err(e) = me.outbox.recover_stale(STALE_SENDING).await {
                        tracing::warn!(error = %e, "outbox: cannot reset stale rows");
                    }
                }
                match me.pass().await {
                    // Delivered something: more may be due right away.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox pass failed"),
                }
                let _ = tokio::time::timeout(Duration::from_millis(250), me.wake.notified()).await;
            }
        })
    }

    /// One look at the due rows: delivers those whose turn it is (at most
    /// `concurrency` at once, never two of one item). Returns how many
    /// were attempted.
    pub async fn pass(&self) -> Result<usize, DbErr> {
        let due = self.outbox.due(256).await?;
        let mut taken: HashSet<String> = HashSet::new();
        let mut batch = Vec::new();
        for row in due {
            if batch.len() >= self.config.concurrency {
                break;
            }
            let lane = row
                .inbox_id
                .clone()
                .unwrap_or_else(|| format!("#{}", row.id));
            if taken.contains(&lane) || self.outbox.blocked_by_earlier(&row).await? {
                taken.insert(lane);
                continue;
            }
            if row.dedupe_key.contains(PROGRESS_MARK)
                && let Some(inbox) = &row.inbox_id
                && self.outbox.concluded(inbox).await?
            {
                self.outbox.supersede(row.id).await?;
                continue;
            }
            let placeholder_ref = match row.after_id {
                None => None,
                Some(a) => match channel_outbox::Entity::find_by_id(a).one(&self.db).await? {
                    Some(p) if p.status == OutboxStatus::Sent.as_str() => p.external_ref,
                    // The placeholder has not gone yet: wait for it.
                    Some(p)
                        if p.status == OutboxStatus::Pending.as_str()
                            || p.status == OutboxStatus::Sending.as_str() =>
                    {
                        taken.insert(lane);
                        continue;
                    }
                    // It failed: the transport posts anew instead.
                    _ => None,
                },
            };
            if !self.outbox.claim(row.id).await? {
                continue;
            }
            taken.insert(lane);
            batch.push((row, placeholder_ref));
        }
        let n = batch.len();
        let mut set = tokio::task::JoinSet::new();
        for (row, placeholder_ref) in batch {
            let key = (row.channel.clone(), row.connection.clone());
            let channel = self.channels.get(&key).cloned();
            set.spawn(async move {
                let delivery = match channel {
                    None => Delivery::Failed(format!(
                        "no configured {} connection named {:?}",
                        row.channel, row.connection
                    )),
                    Some(c) => {
                        let target = serde_json::from_str(&row.target).unwrap_or_default();
                        let body = serde_json::from_str(&row.body).unwrap_or_default();
                        c.deliver(&row.kind, &target, &body, placeholder_ref.as_deref())
                            .await
                    }
                };
                (row, delivery)
            });
        }
        while let Some(done) = set.join_next().await {
            // A panicked delivery leaves its row `sending`, for
            // `recover_stale` to hand back.
            let Ok((row, delivery)) = done else { continue };
            if let Err(e) = self.record(&row, delivery).await {
                tracing::warn!(row = row.id, error = %e, "outbox: cannot record a delivery");
            }
        }
        Ok(n)
    }

    async fn record(&self, row: &Model, delivery: Delivery) -> Result<(), DbErr> {
        let attempts = row.attempts.saturating_add(1);
        let now = Utc::now();
        match delivery {
            Delivery::Sent { external_ref } => {
                self.outbox
                    .mark(
                        row.id,
                        OutboxStatus::Sent,
                        attempts,
                        now,
                        None,
                        external_ref.as_deref(),
                    )
                    .await
            }
            Delivery::Failed(e) => {
                tracing::warn!(row = row.id, channel = %row.channel, error = %e, "outbox: delivery refused");
                self.outbox
                    .mark(row.id, OutboxStatus::Failed, attempts, now, Some(&e), None)
                    .await
            }
            Delivery::Retry { error, after } => {
                let tries = u32::try_from(attempts).unwrap_or(u32::MAX);
                if tries >= self.config.max_attempts {
                    tracing::warn!(row = row.id, channel = %row.channel, error = %error, tries, "outbox: giving up");
                    let e = format!("{error} (gave up after {tries} tries)");
                    return self
                        .outbox
                        .mark(row.id, OutboxStatus::Failed, attempts, now, Some(&e), None)
                        .await;
                }
                let delay = self.config.delay(tries, after);
                let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                self.outbox
                    .mark(
                        row.id,
                        OutboxStatus::Pending,
                        attempts,
                        next,
                        Some(&error),
                        None,
                    )
                    .await
            }
        }
    }
}
