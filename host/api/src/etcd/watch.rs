//! etcd's Watch service.
//!
//! Each gRPC stream runs one task reading create/cancel/progress requests
//! and one task per watcher; all of them send into one bounded channel that
//! is the response stream.

use std::collections::HashMap;
use std::pin::Pin;

use engenho_store::{EventKind, KeyRange, StoreError, WatchProgress, Watcher};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::proto::etcdserverpb::{self as pb, watch_server::Watch};
use super::{Facade, convert};

/// Responses buffered per watch stream; a slow client holds its watchers
/// back instead of growing memory.
pub const WATCH_STREAM_BUFFER: usize = 256;

/// Most watchers on one stream.
pub const WATCHERS_PER_STREAM_MAX: usize = 10_000;

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;
type Sender = mpsc::Sender<Result<pb::WatchResponse, Status>>;

struct Running {
    task: JoinHandle<()>,
    progress: WatchProgress,
}

#[tonic::async_trait]
impl Watch for Facade {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<pb::WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        let requests = request.into_inner();
        let (sender, receiver) = mpsc::channel(WATCH_STREAM_BUFFER);
        tokio::spawn(serve_stream(self.clone(), requests, sender));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}

async fn serve_stream(facade: Facade, mut requests: Streaming<pb::WatchRequest>, sender: Sender) {
    use pb::watch_request::RequestUnion;
    let mut watchers: HashMap<i64, Running> = HashMap::new();
    let mut next_id = 0i64;
    while let Some(Ok(request)) = requests.next().await {
        watchers.retain(|_, running| !running.task.is_finished());
        let sent = match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let id = if create.watch_id != 0 {
                    create.watch_id
                } else {
                    while watchers.contains_key(&next_id) {
                        next_id += 1;
                    }
                    next_id
                };
                create_watcher(&facade, &sender, &mut watchers, id, create).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                if let Some(running) = watchers.remove(&cancel.watch_id) {
                    running.task.abort();
                }
                let revision = facade.node().store().revision();
                let response = pb::WatchResponse {
                    header: facade.header(revision),
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..pb::WatchResponse::default()
                };
                sender.send(Ok(response)).await.is_ok()
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Every future event on this stream is above this revision.
                let current = facade.node().store().revision();
                let revision =
                    watchers.values().map(|running| running.progress.next_revision() - 1).fold(current, i64::min);
                let response =
                    pb::WatchResponse { header: facade.header(revision), watch_id: -1, ..pb::WatchResponse::default() };
                sender.send(Ok(response)).await.is_ok()
            }
            None => sender.send(Err(Status::invalid_argument("empty watch request"))).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    for running in watchers.into_values() {
        running.task.abort();
    }
}

async fn create_watcher(
    facade: &Facade,
    sender: &Sender,
    watchers: &mut HashMap<i64, Running>,
    id: i64,
    create: pb::WatchCreateRequest,
) -> bool {
    let revision = facade.node().store().revision();
    let range = KeyRange { key: create.key, end: create.range_end };
    let refusal = if watchers.contains_key(&id) {
        Some("etcdserver: duplicate watch ID".to_owned())
    } else if watchers.len() >= WATCHERS_PER_STREAM_MAX {
        Some(format!("etcdserver: too many watchers on one stream (at most {WATCHERS_PER_STREAM_MAX})"))
    } else {
        range.validate().err().map(|e| e.to_string())
    };
    if let Some(reason) = refusal {
        let response = pb::WatchResponse {
            header: facade.header(revision),
            watch_id: id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..pb::WatchResponse::default()
        };
        return sender.send(Ok(response)).await.is_ok();
    }
    let created = pb::WatchResponse {
        header: facade.header(revision),
        watch_id: id,
        created: true,
        ..pb::WatchResponse::default()
    };
    if sender.send(Ok(created)).await.is_err() {
        return false;
    }
    let watcher = Watcher::new(facade.node().store().clone(), range, create.start_revision);
    let options = Options {
        id,
        prev_kv: create.prev_kv,
        no_put: create.filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
        no_delete: create.filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
        progress_notify: create.progress_notify,
    };
    let progress = watcher.progress();
    let task = tokio::spawn(run_watcher(facade.clone(), watcher, options, sender.clone()));
    watchers.insert(id, Running { task, progress });
    true
}

struct Options {
    id: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

async fn run_watcher(facade: Facade, mut watcher: Watcher, options: Options, sender: Sender) {
    let interval = facade.inner.config.watch_progress_interval;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        let response = tokio::select! {
            batches = watcher.next() => match batches {
                Ok(batches) => {
                    let revision = batches.last().map_or(0, |b| b.revision);
                    let events: Vec<_> = batches
                        .into_iter()
                        .flat_map(|batch| batch.events)
                        .filter(|e| !(options.no_put && e.kind == EventKind::Put))
                        .filter(|e| !(options.no_delete && e.kind == EventKind::Delete))
                        .map(|e| convert::event(e, options.prev_kv))
                        .collect();
                    if events.is_empty() {
                        continue;
                    }
                    progress.reset();
                    pb::WatchResponse { header: facade.header(revision), watch_id: options.id, events, ..pb::WatchResponse::default() }
                }
                Err(error) => {
                    let compact_revision = match error {
                        StoreError::Compacted { compacted, .. } => compacted,
                        _ => 0,
                    };
                    let response = pb::WatchResponse {
                        header: facade.header(facade.node().store().revision()),
                        watch_id: options.id,
                        canceled: true,
                        compact_revision,
                        cancel_reason: error.to_string(),
                        ..pb::WatchResponse::default()
                    };
                    let _ = sender.send(Ok(response)).await;
                    return;
                }
            },
            _ = progress.tick(), if options.progress_notify => {
                let revision = watcher.next_revision() - 1;
                pb::WatchResponse { header: facade.header(revision), watch_id: options.id, ..pb::WatchResponse::default() }
            }
        };
        if sender.send(Ok(response)).await.is_err() {
            return;
        }
    }
}
