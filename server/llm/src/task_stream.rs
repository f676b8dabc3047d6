//! A stream fed by a spawned task, aborted when the stream is dropped.
//!
//! Used wherever a response is produced by a loop that must stop as soon as
//! the consumer goes away (a client disconnecting cancels generation).

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

/// Runs `f` with the sending half of a channel; the returned stream yields
/// what it sends. Dropping the stream aborts the task.
pub fn task_stream<T, F, Fut>(buffer: usize, f: F) -> impl Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(buffer);
    let guard = AbortOnDrop(tokio::spawn(f(tx)));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| {
        let _ = &guard;
        item
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A backend's event stream fed by a task; dropping it aborts the task
/// (and with it the generation or the upstream request).
pub fn event_stream<F, Fut>(f: F) -> crate::EventStream
where
    F: FnOnce(mpsc::Sender<Result<crate::StreamEvent, crate::LlmError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    task_stream(32, f).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_stream_stops_the_task() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let stream = task_stream(1, move |tx| async move {
            let _done = done_tx; // dropped when the task ends or is aborted
            for i in 0.. {
                if tx.send(i).await.is_err() {
                    return;
                }
            }
        });
        let first: Vec<u32> = stream.take(3).collect().await;
        assert_eq!(first, [0, 1, 2]);
        // `take` dropped the stream: the task must end, dropping `done_tx`.
        assert!(done_rx.await.is_err());
    }
}
