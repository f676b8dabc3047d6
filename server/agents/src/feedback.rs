//! Ratings of agent answers, and their export as preference pairs
//! (`{"prompt", "chosen", "rejected"}` per line) for later fine-tuning:
//! a bad answer with a correction gives (correction over answer); a good
//! and a bad answer of the same agent to the same input give (good over bad).

use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
use serde::Serialize;

use warden_db::entities::{agent_run, run_feedback};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PreferencePair {
    pub agent: String,
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// The runs (or `correction`) each side came from.
    pub chosen_from: String,
    pub rejected_from: String,
}

/// Good and bad answers (run id, answer) to one (agent, input).
type Rated = (Vec<(String, String)>, Vec<(String, String)>);

#[derive(Clone)]
pub struct FeedbackStore {
    db: DatabaseConnection,
}

/// Feedback that cannot be stored as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFeedback {
    #[error("rating must be 1 (good) or -1 (bad)")]
    Rating,
    #[error("comment is limited to 4000 bytes and correction to 16000")]
    TooLong,
    #[error("a correction goes with a bad rating (-1)")]
    CorrectionOnGoodRating,
}

pub fn validate(
    rating: i32,
    comment: Option<&str>,
    correction: Option<&str>,
) -> Result<(), InvalidFeedback> {
    if rating != 1 && rating != -1 {
        return Err(InvalidFeedback::Rating);
    }
    if comment.is_some_and(|c| c.len() > 4000) || correction.is_some_and(|c| c.len() > 16_000) {
        return Err(InvalidFeedback::TooLong);
    }
    if rating == 1 && correction.is_some() {
        return Err(InvalidFeedback::CorrectionOnGoodRating);
    }
    Ok(())
}

impl FeedbackStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn add(
        &self,
        run_id: &str,
        subject: &str,
        rating: i32,
        comment: Option<String>,
        correction: Option<String>,
    ) -> Result<i64, DbErr> {
        let r = run_feedback::Entity::insert(run_feedback::ActiveModel {
            run_id: Set(run_id.to_owned()),
            subject: Set(subject.to_owned()),
            rating: Set(rating),
            comment: Set(comment),
            correction: Set(correction),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        Ok(r.last_insert_id)
    }

    pub async fn pairs(&self) -> Result<Vec<PreferencePair>, DbErr> {
        let feedback = run_feedback::Entity::find().all(&self.db).await?;
        let mut ids: Vec<String> = feedback.iter().map(|f| f.run_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut runs: BTreeMap<String, agent_run::Model> = BTreeMap::new();
        // In chunks: databases bound the number of query parameters.
        for chunk in ids.chunks(500) {
            for r in agent_run::Entity::find()
                .filter(agent_run::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                runs.insert(r.id.clone(), r);
            }
        }
        let mut out = Vec::new();
        // (agent, input) -> (good answers, bad answers), by run id.
        let mut by_prompt: BTreeMap<(String, String), Rated> = BTreeMap::new();
        for f in &feedback {
            let Some(run) = runs.get(&f.run_id) else {
                continue;
            };
            let Some(answer) = run.answer.clone() else {
                continue;
            };
            if let Some(c) = &f.correction {
                out.push(PreferencePair {
                    agent: run.agent.clone(),
                    prompt: run.input.clone(),
                    chosen: c.clone(),
                    rejected: answer.clone(),
                    chosen_from: "correction".into(),
                    rejected_from: run.id.clone(),
                });
            }
            let entry = by_prompt
                .entry((run.agent.clone(), run.input.clone()))
                .or_default();
            if f.rating > 0 {
                entry.0.push((run.id.clone(), answer));
            } else {
                entry.1.push((run.id.clone(), answer));
            }
        }
        for ((agent, prompt), (good, bad)) in by_prompt {
            for (gid, g) in &good {
                for (bid, b) in &bad {
                    if g != b {
                        out.push(PreferencePair {
                            agent: agent.clone(),
                            prompt: prompt.clone(),
                            chosen: g.clone(),
                            rejected: b.clone(),
                            chosen_from: gid.clone(),
                            rejected_from: bid.clone(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}
