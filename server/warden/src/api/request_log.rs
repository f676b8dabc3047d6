//! The `request_log` table, written off the request path.
//!
//! Each authenticated request gets a [`RequestRecord`]; handlers fill in the
//! model and token counts (a stream does so when it ends). The row is queued
//! when the last clone of the record is dropped, i.e. when the response body
//! is finished, so latency covers streamed bodies too. A single writer task
//! drains the queue; [`RequestLogger::shutdown`] flushes it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use warden_db::entities::request_log;

#[derive(Debug, Clone, Default)]
struct Fields {
    model: Option<String>,
    status: u16,
    prompt_tokens: u32,
    completion_tokens: u32,
    streamed: bool,
}

struct Entry {
    key_id: i64,
    endpoint: String,
    started: Instant,
    fields: Mutex<Fields>,
    tx: mpsc::UnboundedSender<request_log::ActiveModel>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let f = self
            .fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let row = request_log::ActiveModel {
            key_id: Set(Some(self.key_id)),
            endpoint: Set(self.endpoint.clone()),
            model: Set(f.model),
            status: Set(i32::from(f.status)),
            prompt_tokens: Set(f.prompt_tokens as i32),
            completion_tokens: Set(f.completion_tokens as i32),
            latency_ms: Set(self.started.elapsed().as_millis() as i64),
            streamed: Set(f.streamed),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        };
        // The writer is gone only during shutdown, after it was flushed.
        let _ = self.tx.send(row);
    }
}

/// Shared handle to one request's log row.
#[derive(Clone)]
pub struct RequestRecord(Arc<Entry>);

impl RequestRecord {
    fn update(&self, f: impl FnOnce(&mut Fields)) {
        f(&mut self.0.fields.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn set_status(&self, status: u16) {
        self.update(|f| f.status = status);
    }

    pub fn set_model(&self, model: &str, streamed: bool) {
        self.update(|f| {
            f.model = Some(model.to_owned());
            f.streamed = streamed;
        });
    }

    pub fn set_tokens(&self, prompt: u32, completion: u32) {
        self.update(|f| {
            f.prompt_tokens = prompt;
            f.completion_tokens = completion;
        });
    }
}

#[derive(Clone)]
pub struct RequestLogger {
    tx: mpsc::UnboundedSender<request_log::ActiveModel>,
}

pub struct LogWriter {
    handle: JoinHandle<()>,
}

impl RequestLogger {
    /// Starts the writer task.
    pub fn spawn(db: DatabaseConnection) -> (Self, LogWriter) {
        let (tx, mut rx) = mpsc::unbounded_channel::<request_log::ActiveModel>();
        let handle = tokio::spawn(async move {
            while let Some(row) = rx.recv().await {
                if let Err(e) = row.insert(&db).await {
                    tracing::warn!(error = %e, "cannot write request log row");
                }
            }
        });
        (Self { tx }, LogWriter { handle })
    }

    pub fn start(&self, key_id: i64, endpoint: String) -> RequestRecord {
        RequestRecord(Arc::new(Entry {
            key_id,
            endpoint,
            started: Instant::now(),
            fields: Mutex::default(),
            tx: self.tx.clone(),
        }))
    }
}

impl LogWriter {
    /// Waits until every queued row is written. Call after all
    /// [`RequestLogger`] clones (and so the app state) are dropped.
    pub async fn flush(self) {
        if let Err(e) = self.handle.await {
            tracing::warn!(error = %e, "request log writer failed");
        }
    }
}
