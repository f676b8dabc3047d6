//! The dispatcher: takes inbox items up after their acknowledgement, runs
//! the agent (with the thread's history, as the person's Warden user,
//! scoped to the channel), and turns what the run did into outbox rows:
//! a placeholder, progress notes, the approval request, the outcome.
//!
//! Every conclusion goes through [`Dispatcher::settle`], which reads the
//! run's row and acts on its status. It is called when a run returns, and
//! periodically for items whose run waits for an approver (a decision made
//! through the API or another channel ends there too); its conditional
//! status change and the outcome rows commit in one transaction, so an
//! item is concluded once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::conversations::Conversations;
use crate::identities::Identities;
use crate::inbox::{Inbox, InboxStatus};
use crate::outbox::{FAILED_MARK, OUTCOME_MARK, Outbox, Route, Sender, placeholder_key};
use crate::{ApprovalNeeded, Channel, ChannelError, Message, Outcome, Outgoing};
use warden_agents::runs::last_approver;
use warden_agents::state::LoopState;
use warden_agents::{AgentService, Resolution, RunError, RunRequest, RunStatus, StepRecord};
use warden_db::entities::{agent_run, channel_inbox};

/// Times an item is taken up (a restart mid-run, or a failing database,
/// has it taken up again) before it is given up with an apology.
pub const MAX_ATTEMPTS: i32 = 3;

/// Runs in flight at once from all channels.
const CONCURRENT_RUNS: usize = 8;

/// What a run waits for, as [`Dispatcher::pending`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Waiting(ApprovalNeeded),
    /// Not waiting: its status, and who made its latest decision.
    Decided {
        status: String,
        by: Option<String>,
    },
    NoRun,
}

/// What an approver's decision came to.
#[derive(Debug)]
pub enum Decided {
    /// The run went on; its outcome is on its way to the thread.
    Resumed { status: RunStatus },
    /// It was not waiting (any more): who decided, if anyone did.
    Already { status: String, by: Option<String> },
    /// It waits, but on a later request than the one decided on.
    Stale,
}

pub struct Dispatcher {
    db: DatabaseConnection,
    pub inbox: Inbox,
    pub conversations: Conversations,
    pub identities: Identities,
    pub sender: Arc<Sender>,
    agents: Arc<AgentService>,
    channels: HashMap<(String, String), Arc<dyn Channel>>,
    wake: Notify,
    runs: Arc<Semaphore>,
    /// Threads with an item being processed in this process.
    threads: std::sync::Mutex<HashSet<String>>,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        agents: Arc<AgentService>,
        channels: &[Arc<dyn Channel>],
        sender: Arc<Sender>,
    ) -> Self {
        Self {
            inbox: Inbox::new(db.clone()),
            conversations: Conversations::new(db.clone()),
            identities: Identities::new(db.clone()),
            db,
            sender,
            agents,
            channels: channels
                .iter()
                .map(|c| {
                    (
                        (c.channel().to_owned(), c.connection().to_owned()),
                        c.clone(),
                    )
                })
                .collect(),
            wake: Notify::new(),
            runs: Arc::new(Semaphore::new(CONCURRENT_RUNS)),
            threads: std::sync::Mutex::default(),
        }
    }

    /// A new item is in the inbox.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Takes items up until the process ends. First, items a stopped
    /// server was working on go back to `received`, to be taken up again.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            match me.inbox.in_status(InboxStatus::Processing, 10_000).await {
                Ok(items) => {
                    for item in items {
                        let _ = me
                            .inbox
                            .transition(
                                &item.id,
                                InboxStatus::Processing,
                                InboxStatus::Received,
                                None,
                            )
                            .await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "channels: cannot list interrupted items"),
            }
            let mut last_settle = tokio::time::Instant::now();
            loop {
                match me.inbox.in_status(InboxStatus::Received, 64).await {
                    Ok(items) => {
                        for item in items {
                            if !me.take_up(item) {
                                // Every run slot is busy: later.
                                break;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "channels: cannot read the inbox"),
                }
                if last_settle.elapsed() >= Duration::from_secs(1) {
                    last_settle = tokio::time::Instant::now();
                    me.settle_waiting().await;
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), me.wake.notified()).await;
            }
        })
    }

    /// Claims a received item and processes it in its own task. False when
    /// no run slot is free.
    fn take_up(self: &Arc<Self>, item: channel_inbox::Model) -> bool {
        let Ok(permit) = self.runs.clone().try_acquire_owned() else {
            return false;
        };
        // One item per thread at a time: the next one's history is what
        // this one writes.
        let thread = serde_json::from_str::<Message>(&item.payload)
            .map(|m| format!("{}/{}/{}", item.channel, item.connection, m.thread_key))
            .unwrap_or_else(|_| item.id.clone());
        if !self.busy_threads().insert(thread.clone()) {
            return true;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let claimed = me
                .inbox
                .transition(
                    &item.id,
                    InboxStatus::Received,
                    InboxStatus::Processing,
                    None,
                )
                .await;
            if matches!(claimed, Ok(true)) {
                let id = item.id.clone();
                let attempt = item.attempts + 1;
                if let Err(e) = me.process(item).await {
                    tracing::warn!(item = %id, error = %e, attempt, "channels: processing failed");
                    // Another try later (a busy database), up to the limit.
                    let again = attempt < MAX_ATTEMPTS
                        && me
                            .inbox
                            .transition(&id, InboxStatus::Processing, InboxStatus::Received, None)
                            .await
                            .unwrap_or(false);
                    if !again {
                        let _ = me.fail(&id, "an internal error (see the server log)").await;
                    }
                }
            }
            me.busy_threads().remove(&thread);
            drop(permit);
            me.wake();
        });
        true
    }

    fn busy_threads(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The item's connection and the message it carries.
    fn unpack(
        &self,
        item: &channel_inbox::Model,
    ) -> Result<(Arc<dyn Channel>, Message), ChannelError> {
        let channel = self
            .channels
            .get(&(item.channel.clone(), item.connection.clone()))
            .cloned()
            .ok_or_else(|| ChannelError::UnknownConnection {
                channel: item.channel.clone(),
                connection: item.connection.clone(),
            })?;
        let msg = serde_json::from_str(&item.payload).map_err(ChannelError::Decode)?;
        Ok((channel, msg))
    }

    /// The conversation of the thread `msg` belongs to (made on first use).
    async fn conversation(&self, channel: &dyn Channel, msg: &Message) -> Result<String, DbErr> {
        self.conversations
            .open(
                channel.channel(),
                channel.connection(),
                &msg.thread_key,
                &msg.agent,
            )
            .await
    }

    async fn process(self: &Arc<Self>, item: channel_inbox::Model) -> Result<(), ChannelError> {
        let (channel, msg) = self.unpack(&item)?;
        let route = Route::new(channel.as_ref(), Some(&item.id));
        // Taken up again after a restart: a run that got to an end before
        // the stop is concluded, not repeated.
        if let Some(run_id) = &item.run_id
            && let Some((run, _)) = self.agents.runner.runs.get(run_id).await?
            && !(run.status == RunStatus::Failed.as_str()
                && run.error.as_deref() == Some(warden_agents::runs::INTERRUPTED))
        {
            return self.settle(&item.id).await;
        }
        // `attempts` counts this claim too.
        if item.attempts + 1 > MAX_ATTEMPTS {
            return self
                .give_up(
                    &item,
                    &msg,
                    &channel,
                    &format!("could not be answered in {MAX_ATTEMPTS} attempts"),
                )
                .await;
        }
        let user = self
            .identities
            .resolve(
                channel.channel(),
                &msg.external_user,
                msg.display_name.as_deref(),
            )
            .await?;
        let conversation = self.conversation(channel.as_ref(), &msg).await?;
        let history = self.conversations.history(&conversation).await?;
        if let Some(p) = channel.placeholder(&msg) {
            Outbox::enqueue(&self.db, route, &placeholder_key(&item.id), &p).await?;
            self.sender.wake();
        }
        let agent = match self.agents.catalog.get(&msg.agent).await {
            Ok(a) => a,
            Err(warden_agents::CatalogError::NotFound(name)) => {
                return self
                    .give_up(&item, &msg, &channel, &format!("no agent named {name:?}"))
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let run_id = warden_agents::runner::new_run_id();
        self.inbox.set_run(&item.id, &run_id).await?;
        let (events, progress) = self.progress(channel.clone(), msg.clone(), &item.id, &run_id);
        let request = RunRequest {
            agent,
            message: msg.text.clone(),
            subject: Some(user),
            channel: channel.channel().to_owned(),
            id: Some(run_id),
            history,
            answer_stream: None,
        };
        let result = self.agents.runner.run(request, Some(events)).await;
        // Every progress note is queued before the outcome.
        let _ = progress.await;
        match result {
            Ok(_) => self.settle(&item.id).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Forwards a run's steps as progress notes until the run ends.
    fn progress(
        self: &Arc<Self>,
        channel: Arc<dyn Channel>,
        msg: Message,
        inbox_id: &str,
        run_id: &str,
    ) -> (
        mpsc::UnboundedSender<StepRecord>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<StepRecord>();
        let me = self.clone();
        let inbox_id = inbox_id.to_owned();
        let run_id = run_id.to_owned();
        let task = tokio::spawn(async move {
            while let Some(step) = rx.recv().await {
                let Some(out) = channel.progress(&msg, &step) else {
                    continue;
                };
                let route = Route::new(channel.as_ref(), Some(&inbox_id));
                let key = format!("{inbox_id}:{run_id}:progress:{}", step.idx);
                match Outbox::enqueue(&me.db, route, &key, &out).await {
                    Ok(()) => me.sender.wake(),
                    Err(e) => tracing::warn!(error = %e, "channels: cannot queue a progress note"),
                }
            }
        });
        (tx, task)
    }

    /// Acts on where the item's run is: still running (nothing to do),
    /// waiting for an approver (ask them, once per pause), or ended
    /// (conclude the item once, with its outcome).
    pub async fn settle(&self, inbox_id: &str) -> Result<(), ChannelError> {
        match self.inbox.get(inbox_id).await? {
            Some(item) => self.settle_item(&item).await,
            None => Ok(()),
        }
    }

    async fn settle_item(&self, item: &channel_inbox::Model) -> Result<(), ChannelError> {
        let Some(run_id) = item.run_id.clone() else {
            return Ok(());
        };
        let (channel, msg) = self.unpack(item)?;
        let Some((run, _)) = self.agents.runner.runs.get(&run_id).await? else {
            return Ok(());
        };
        let route = Route::new(channel.as_ref(), Some(&item.id));
        if run.status == RunStatus::Running.as_str() {
            return Ok(());
        }
        if run.status == RunStatus::AwaitingApproval.as_str() {
            self.inbox
                .transition(
                    &item.id,
                    InboxStatus::Processing,
                    InboxStatus::AwaitingApproval,
                    None,
                )
                .await?;
            // One request per pause: a run that pauses again after a
            // decision has more steps.
            let key = format!("{}:{run_id}:approval:{}", item.id, run.steps);
            if !self
                .sender
                .outbox()
                .has(route.channel, route.connection, &format!("{key}:0"))
                .await?
            {
                let needed = approval_needed(&run)?;
                for (i, out) in channel.approval(&msg, &needed).iter().enumerate() {
                    Outbox::enqueue(&self.db, route, &format!("{key}:{i}"), out).await?;
                }
                self.sender.wake();
            }
            return Ok(());
        }
        let outcome = if run.status == RunStatus::Completed.as_str() {
            Outcome::Answer(run.answer.clone().unwrap_or_default())
        } else {
            Outcome::Stopped {
                status: run.status.clone(),
                message: run.error.clone().unwrap_or_default(),
            }
        };
        let conversation = self.conversation(channel.as_ref(), &msg).await?;
        let outs = channel.outcome(&msg, &run_id, &outcome);
        let txn = warden_db::begin_write(&self.db).await?;
        let moved = conclude(&txn, &item.id, InboxStatus::Done, None).await?;
        if !moved {
            // Someone else concluded it.
            return Ok(());
        }
        if let Outcome::Answer(answer) = &outcome {
            Conversations::append(&txn, &conversation, &run_id, &run.input, answer).await?;
        }
        for (i, out) in outs.iter().enumerate() {
            let key = format!("{}:{run_id}{OUTCOME_MARK}{i}", item.id);
            Outbox::enqueue(&txn, route, &key, out).await?;
        }
        txn.commit().await?;
        self.sender.wake();
        Ok(())
    }

    /// Items waiting for an approver whose run has moved on elsewhere.
    async fn settle_waiting(&self) {
        let Ok(items) = self
            .inbox
            .in_status(InboxStatus::AwaitingApproval, 256)
            .await
        else {
            return;
        };
        for item in items {
            if let Err(e) = self.settle_item(&item).await {
                tracing::warn!(item = %item.id, error = %e, "channels: cannot settle an item");
            }
        }
    }

    /// An approver's decision from a channel (a Slack button): resumes the
    /// run through the same path as the API, and concludes its item.
    pub async fn decide(
        self: &Arc<Self>,
        run_id: &str,
        pause: u32,
        resolution: Resolution,
    ) -> Result<Decided, ChannelError> {
        let (run, steps) = self
            .agents
            .runner
            .runs
            .get(run_id)
            .await?
            .ok_or_else(|| RunError::NotFound(run_id.to_owned()))?;
        if run.status != RunStatus::AwaitingApproval.as_str() {
            return Ok(Decided::Already {
                status: run.status,
                by: last_approver(&steps),
            });
        }
        if u32::try_from(run.steps).ok() != Some(pause) {
            return Ok(Decided::Stale);
        }
        let agent = self.agents.catalog.get(&run.agent).await?;
        let item = self.inbox.by_run(run_id).await?;
        let events = match &item {
            Some(item) => {
                let (channel, msg) = self.unpack(item)?;
                Some(self.progress(channel, msg, &item.id, run_id))
            }
            None => None,
        };
        let (tx, task) = match events {
            Some((tx, task)) => (Some(tx), Some(task)),
            None => (None, None),
        };
        let result = self
            .agents
            .runner
            .resume(run_id, &agent, resolution, tx)
            .await;
        if let Some(t) = task {
            let _ = t.await;
        }
        match result {
            Ok(report) => {
                if let Some(item) = item {
                    self.settle(&item.id).await?;
                }
                Ok(Decided::Resumed {
                    status: report.status,
                })
            }
            // Another approver (or the API) got there first.
            Err(RunError::NotPaused(_, _)) => {
                let (run, steps) = self
                    .agents
                    .runner
                    .runs
                    .get(run_id)
                    .await?
                    .ok_or_else(|| RunError::NotFound(run_id.to_owned()))?;
                Ok(Decided::Already {
                    status: run.status,
                    by: last_approver(&steps),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `run_id` waits for an approver, and on what; for a
    /// confirmation page that must show what a decision would decide.
    pub async fn pending(&self, run_id: &str) -> Result<Pending, ChannelError> {
        let Some((run, steps)) = self.agents.runner.runs.get(run_id).await? else {
            return Ok(Pending::NoRun);
        };
        if run.status == RunStatus::AwaitingApproval.as_str() {
            Ok(Pending::Waiting(approval_needed(&run)?))
        } else {
            Ok(Pending::Decided {
                status: run.status,
                by: last_approver(&steps),
            })
        }
    }

    /// Queues a message that belongs to no inbox item (an answer to a
    /// click, a slash command's status), delivered like every reply.
    pub async fn send(
        &self,
        channel: &dyn Channel,
        key: &str,
        out: &Outgoing,
    ) -> Result<(), DbErr> {
        let route = Route::new(channel, None);
        Outbox::enqueue(&self.db, route, key, out).await?;
        self.sender.wake();
        Ok(())
    }

    async fn give_up(
        &self,
        item: &channel_inbox::Model,
        msg: &Message,
        channel: &Arc<dyn Channel>,
        why: &str,
    ) -> Result<(), ChannelError> {
        let route = Route::new(channel.as_ref(), Some(&item.id));
        let outcome = Outcome::Stopped {
            status: RunStatus::Failed.as_str().to_owned(),
            message: why.to_owned(),
        };
        let outs = channel.outcome(msg, "", &outcome);
        let txn = warden_db::begin_write(&self.db).await?;
        if !conclude(&txn, &item.id, InboxStatus::Failed, Some(why)).await? {
            return Ok(());
        }
        for (i, out) in outs.iter().enumerate() {
            let key = format!("{}{FAILED_MARK}{i}", item.id);
            Outbox::enqueue(&txn, route, &key, out).await?;
        }
        txn.commit().await?;
        self.sender.wake();
        Ok(())
    }

    async fn fail(&self, inbox_id: &str, why: &str) -> Result<(), ChannelError> {
        let Some(item) = self.inbox.get(inbox_id).await? else {
            return Ok(());
        };
        let (channel, msg) = self.unpack(&item)?;
        self.give_up(&item, &msg, &channel, why).await
    }
}

/// Moves an item that is being worked on (or waits for an approver) to
/// `to`, inside `db`'s transaction; false if it was already concluded.
async fn conclude(
    db: &impl ConnectionTrait,
    id: &str,
    to: InboxStatus,
    note: Option<&str>,
) -> Result<bool, DbErr> {
    use warden_db::entities::channel_inbox::Column;
    let mut update = channel_inbox::Entity::update_many()
        .col_expr(Column::Status, Expr::value(to.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.is_in([
            InboxStatus::Processing.as_str(),
            InboxStatus::AwaitingApproval.as_str(),
        ]));
    if let Some(n) = note {
        update = update.col_expr(Column::Note, Expr::value(n));
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// What the paused run's saved state says it waits for.
fn approval_needed(run: &agent_run::Model) -> Result<ApprovalNeeded, ChannelError> {
    let state: LoopState = serde_json::from_str(run.state.as_deref().unwrap_or("null"))
        .map_err(ChannelError::Decode)?;
    let pending = state
        .pending
        .ok_or(ChannelError::Run(RunError::NothingPending))?;
    Ok(ApprovalNeeded {
        run_id: run.id.clone(),
        pause: u32::try_from(run.steps).unwrap_or(0),
        agent: run.agent.clone(),
        tool: pending.waiting.0.clone(),
        arguments: pending.waiting.1.to_string(),
        rule: pending.message.clone(),
    })
}
