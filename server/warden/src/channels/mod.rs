//! The channels agents are reached through: the channel core
//! (`warden-channels`: inbox, conversations, identities, outbox, the
//! dispatcher) with its connections, and each channel's HTTP routes.
//! Slack is [`slack`]; email is [`email`] (raw MIME, Mailgun, Postmark or
//! SendGrid posts in, SMTP out, approvals by signed links).

pub mod email;
pub mod slack;

use std::sync::Arc;

use anyhow::Context;
use sea_orm::DatabaseConnection;

use warden_agents::AgentService;
use warden_channels::{Channel, Dispatcher, Sender};

use crate::config::ChannelsConfig;

/// The configured connections and the core that serves them.
pub struct Channels {
    pub dispatcher: Arc<Dispatcher>,
    pub slack: Vec<Arc<slack::SlackConnection>>,
    pub email: Vec<Arc<email::EmailConnection>>,
}

impl Channels {
    /// Builds every configured connection (reading its secrets from the
    /// environment); `None` when no channel is configured.
    pub fn build(
        config: &ChannelsConfig,
        db: DatabaseConnection,
        agents: Arc<AgentService>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        if config.slack.is_empty() && config.email.is_empty() {
            return Ok(None);
        }
        let mut slack = Vec::new();
        for c in &config.slack {
            slack.push(Arc::new(
                slack::SlackConnection::new(c.clone(), &env)
                    .with_context(|| format!("setting up Slack connection {:?}", c.name))?,
            ));
        }
        let mut email = Vec::new();
        for c in &config.email {
            email.push(Arc::new(
                email::EmailConnection::new(c.clone(), db.clone(), &env)
                    .with_context(|| format!("setting up email connection {:?}", c.name))?,
            ));
        }
        let all: Vec<Arc<dyn Channel>> = slack
            .iter()
            .map(|s| s.clone() as Arc<dyn Channel>)
            .chain(email.iter().map(|e| e.clone() as Arc<dyn Channel>))
            .collect();
        let sender = Arc::new(Sender::new(db.clone(), &all, config.delivery.clone()));
        let dispatcher = Arc::new(Dispatcher::new(db, agents, &all, sender));
        Ok(Some(Arc::new(Self {
            dispatcher,
            slack,
            email,
        })))
    }

    /// Starts taking up inbox items and delivering the outbox (and asks
    /// Slack who the bots are where the config does not say).
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        for s in &self.slack {
            s.learn_bot_user();
        }
        vec![self.dispatcher.spawn(), self.dispatcher.sender.spawn()]
    }
}
