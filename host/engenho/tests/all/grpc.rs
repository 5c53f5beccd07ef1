//! Goal: the watch features etcdctl 3.4 cannot reach (progress
//! notifications, progress requests, cancellation, filters) behave as in
//! etcd. Method: drive a real node with the generated etcd gRPC client.

use std::time::Duration;

use engenho_api::etcd::proto::etcdserverpb::{
    PutRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
    kv_client::KvClient, watch_client::WatchClient, watch_create_request::FilterType, watch_request::RequestUnion,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::support::EngenhoNode;

async fn next(stream: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch response in time")
        .expect("stream open")
        .expect("no error")
}

#[test]
fn progress_cancel_and_filters_over_grpc() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "watched");
    node.start_ready(&["--watch-progress-interval", "1"]);
    tokio::runtime::Runtime::new().expect("runtime").block_on(async move {
        let mut kv = KvClient::new(node.etcd_channel());
        let mut watch = WatchClient::new(node.etcd_channel());
        let (requests, receiver) = mpsc::channel(8);
        let mut stream =
            watch.watch(tokio_stream::wrappers::ReceiverStream::new(receiver)).await.expect("watch").into_inner();
        let create = |watch_id, filters: Vec<i32>| WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"p/".to_vec(),
                range_end: b"p0".to_vec(),
                progress_notify: true,
                watch_id,
                filters,
                ..WatchCreateRequest::default()
            })),
        };
        requests.send(create(7, vec![FilterType::Nodelete as i32])).await.expect("send");
        let created = next(&mut stream).await;
        assert!(created.created && created.watch_id == 7);

        let put = kv
            .put(PutRequest { key: b"p/a".to_vec(), value: b"1".to_vec(), ..PutRequest::default() })
            .await
            .expect("put");
        let revision = put.into_inner().header.expect("header").revision;
        let event = next(&mut stream).await;
        assert_eq!(event.events.len(), 1);
        assert_eq!(event.header.as_ref().map(|h| h.revision), Some(revision));
        kv.delete_range(engenho_api::etcd::proto::etcdserverpb::DeleteRangeRequest {
            key: b"p/a".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete");

        let progress = next(&mut stream).await;
        assert!(progress.events.is_empty(), "the delete is filtered out: {progress:?}");
        assert_eq!(progress.watch_id, 7);
        // The node's own loops may write meanwhile: the progress reaches
        // at least the filtered delete.
        let reached = progress.header.as_ref().map_or(0, |h| h.revision);
        assert!(reached > revision, "progress covers the filtered delete: {reached} after {revision}");

        requests
            .send(WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) })
            .await
            .expect("send");
        let mut answer = next(&mut stream).await;
        while answer.watch_id != -1 {
            answer = next(&mut stream).await;
        }
        assert!(answer.header.is_some_and(|h| h.revision > revision), "a progress answer covers the delete");

        requests.send(create(7, vec![])).await.expect("send");
        let duplicate = next(&mut stream).await;
        assert!(duplicate.canceled && duplicate.cancel_reason.contains("duplicate watch ID"), "{duplicate:?}");

        requests
            .send(WatchRequest { request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 7 })) })
            .await
            .expect("send");
        let mut canceled = next(&mut stream).await;
        while !canceled.canceled {
            canceled = next(&mut stream).await;
        }
        assert_eq!(canceled.watch_id, 7);
    });
}
