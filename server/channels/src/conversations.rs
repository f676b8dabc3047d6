//! An external thread is one Warden conversation; its turns (as the
//! policies let them through) are the agent's history on the next message
//! in that thread, the same history `agent:` chat completions carry.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use warden_db::entities::{channel_conversation, channel_turn};
use warden_llm::{ChatMessage, Role};

/// Turns of history given to the agent (the most recent ones).
pub const HISTORY_TURNS: u64 = 40;

#[derive(Clone)]
pub struct Conversations {
    db: DatabaseConnection,
}

impl Conversations {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The conversation of `thread_key`, created on its first message.
    pub async fn open(
        &self,
        channel: &str,
        connection: &str,
        thread_key: &str,
        agent: &str,
    ) -> Result<String, DbErr> {
        use channel_conversation::Column;
        let now = Utc::now();
        let row = channel_conversation::ActiveModel {
            id: Set(format!("conv_{}", uuid::Uuid::new_v4().simple())),
            channel: Set(channel.to_owned()),
            connection: Set(connection.to_owned()),
            thread_key: Set(thread_key.to_owned()),
            agent: Set(agent.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        channel_conversation::Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Channel, Column::Connection, Column::ThreadKey])
            .exec(&self.db)
            .await?;
        let row = channel_conversation::Entity::find()
            .filter(Column::Channel.eq(channel))
            .filter(Column::Connection.eq(connection))
            .filter(Column::ThreadKey.eq(thread_key))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("conversation {thread_key}")))?;
        Ok(row.id)
    }

    /// The last [`HISTORY_TURNS`] turns, oldest first.
    pub async fn history(&self, conversation: &str) -> Result<Vec<ChatMessage>, DbErr> {
        use channel_turn::Column;
        let mut rows = channel_turn::Entity::find()
            .filter(Column::ConversationId.eq(conversation))
            .order_by_desc(Column::Id)
            .limit(HISTORY_TURNS)
            .all(&self.db)
            .await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|r| ChatMessage {
                role: if r.role == "assistant" {
                    Role::Assistant
                } else {
                    Role::User
                },
                content: Some(r.content),
                tool_calls: Vec::new(),
                tool_call_id: None,
            })
            .collect())
    }

    /// Appends a question and its answer (inside the caller's transaction,
    /// so a conversation never holds a question without its answer).
    pub async fn append(
        db: &impl ConnectionTrait,
        conversation: &str,
        run_id: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let turn = |role: &str, content: &str| channel_turn::ActiveModel {
            conversation_id: Set(conversation.to_owned()),
            role: Set(role.to_owned()),
            content: Set(content.to_owned()),
            run_id: Set(Some(run_id.to_owned())),
            created_at: Set(now),
            ..Default::default()
        };
        channel_turn::Entity::insert_many([turn("user", question), turn("assistant", answer)])
            .exec(db)
            .await?;
        Ok(())
    }
}
