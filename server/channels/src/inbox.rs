//! The inbox: every verified inbound event is a row before it is
//! acknowledged. Two unique keys drop duplicates: the event's own id (a
//! retried delivery) and a message key (the same answerable message
//! arriving as a second event, e.g. Slack's `app_mention` and a direct
//! `message`).

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, SqlErr,
};

use warden_db::entities::channel_inbox::{self, Column};

/// Where an inbox item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    /// Stored and acknowledged, not yet taken up.
    Received,
    /// Recorded but not answered (a bot, an edit, a foreign workspace...).
    Ignored,
    /// A run is working on it.
    Processing,
    /// Its run waits for an approver.
    AwaitingApproval,
    /// Its outcome is in the outbox.
    Done,
    /// It could not be answered; `note` says why.
    Failed,
}

impl InboxStatus {
    pub const ALL: [InboxStatus; 6] = [
        InboxStatus::Received,
        InboxStatus::Ignored,
        InboxStatus::Processing,
        InboxStatus::AwaitingApproval,
        InboxStatus::Done,
        InboxStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Received => "received",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Processing => "processing",
            InboxStatus::AwaitingApproval => "awaiting_approval",
            InboxStatus::Done => "done",
            InboxStatus::Failed => "failed",
        }
    }
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub channel: &'static str,
    pub connection: String,
    pub event_key: String,
    /// `None` for ignored events: they must not stop the same message
    /// arriving as an answerable event from being answered.
    pub message_key: Option<String>,
    /// `Some(reason)` records the event as ignored.
    pub ignored: Option<String>,
    /// The [`crate::Message`] (JSON), or the raw event for ignored ones.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored under this id; processed after the acknowledgement.
    New(String),
    /// Stored as ignored, with this id.
    Ignored(String),
    /// Already in the inbox: acknowledge, do nothing.
    Duplicate,
}

#[derive(Clone)]
pub struct Inbox {
    db: DatabaseConnection,
}

impl Inbox {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Stores `item` unless either of its keys is already there. Returns
    /// only once the row is committed: the caller may then acknowledge.
    pub async fn accept(&self, item: NewItem) -> Result<Accepted, DbErr> {
        let id = format!("in_{}", uuid::Uuid::new_v4().simple());
        let now = Utc::now();
        let status = if item.ignored.is_some() {
            InboxStatus::Ignored
        } else {
            InboxStatus::Received
        };
        let row = channel_inbox::ActiveModel {
            id: Set(id.clone()),
            channel: Set(item.channel.to_owned()),
            connection: Set(item.connection),
            event_key: Set(item.event_key),
            message_key: Set(item.message_key),
            status: Set(status.as_str().to_owned()),
            note: Set(item.ignored.clone()),
            payload: Set(item.payload),
            run_id: Set(None),
            attempts: Set(0),
            received_at: Set(now),
            updated_at: Set(now),
        };
        // The unique indexes decide, so two concurrent deliveries of one
        // event (a retry racing the original) store it once, on SQLite and
        // PostgreSQL alike.
        match row.insert(&self.db).await {
            Ok(_) if item.ignored.is_some() => Ok(Accepted::Ignored(id)),
            Ok(_) => Ok(Accepted::New(id)),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(Accepted::Duplicate)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<channel_inbox::Model>, DbErr> {
        channel_inbox::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
    }

    /// The item a run belongs to.
    pub async fn by_run(&self, run_id: &str) -> Result<Option<channel_inbox::Model>, DbErr> {
        channel_inbox::Entity::find()
            .filter(Column::RunId.eq(run_id))
            .one(&self.db)
            .await
    }

    /// Items in `status`, oldest first.
    pub async fn in_status(
        &self,
        status: InboxStatus,
        limit: u64,
    ) -> Result<Vec<channel_inbox::Model>, DbErr> {
        use sea_orm::QuerySelect;
        channel_inbox::Entity::find()
            .filter(Column::Status.eq(status.as_str()))
            .order_by_asc(Column::ReceivedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Moves an item from `from` to `to` if it is still in `from`; true
    /// when this call made the move (so two workers never both take it).
    pub async fn transition(
        &self,
        id: &str,
        from: InboxStatus,
        to: InboxStatus,
        note: Option<&str>,
    ) -> Result<bool, DbErr> {
        let mut update = channel_inbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(to.as_str()))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(from.as_str()));
        if let Some(n) = note {
            update = update.col_expr(Column::Note, Expr::value(n));
        }
        if to == InboxStatus::Processing {
            update = update.col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1));
        }
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    pub async fn set_run(&self, id: &str, run_id: &str) -> Result<(), DbErr> {
        channel_inbox::Entity::update_many()
            .col_expr(Column::RunId, Expr::value(run_id))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Items of `channel` in `status`.
    pub async fn count(&self, channel: &str, status: InboxStatus) -> Result<u64, DbErr> {
        self.count_where(channel, None, status).await
    }

    /// Items per status of one connection, for its health.
    pub async fn counts(
        &self,
        channel: &str,
        connection: &str,
    ) -> Result<Vec<(&'static str, u64)>, DbErr> {
        let mut out = Vec::new();
        for s in InboxStatus::ALL {
            out.push((
                s.as_str(),
                self.count_where(channel, Some(connection), s).await?,
            ));
        }
        Ok(out)
    }

    async fn count_where(
        &self,
        channel: &str,
        connection: Option<&str>,
        status: InboxStatus,
    ) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        let mut q = channel_inbox::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Status.eq(status.as_str()));
        if let Some(c) = connection {
            q = q.filter(Column::Connection.eq(c));
        }
        q.count(&self.db).await
    }
}
