//! An ext_proc processor that does no work: every message is answered at once with the
//! matching empty reply (continue, nothing changed). Built on the same gRPC stack as
//! semrouter's (tonic, a 2-worker tokio runtime, TCP_NODELAY on accepted sockets), it is the
//! floor any processor pays on a machine: Envoy's messages and the gRPC round trips, without a
//! decision. The ext_proc bench puts an Envoy in front of it. Stops when the process ends.
#![allow(dead_code)] // each test binary uses a different part of it

use std::pin::Pin;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request as Message;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response as Reply;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, HeadersResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

struct Noop;

#[tonic::async_trait]
impl ExternalProcessor for Noop {
    type ProcessStream =
        Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send + 'static>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let replies = request.into_inner().filter_map(|message| async move {
            let reply = match message.ok()?.request? {
                Message::RequestHeaders(_) => Reply::RequestHeaders(HeadersResponse::default()),
                Message::RequestBody(_) => Reply::RequestBody(BodyResponse::default()),
                Message::RequestTrailers(_) => Reply::RequestTrailers(TrailersResponse::default()),
                Message::ResponseHeaders(_) => Reply::ResponseHeaders(HeadersResponse::default()),
                Message::ResponseBody(_) => Reply::ResponseBody(BodyResponse::default()),
                Message::ResponseTrailers(_) => {
                    Reply::ResponseTrailers(TrailersResponse::default())
                }
            };
            Some(Ok(ProcessingResponse {
                response: Some(reply),
                ..ProcessingResponse::default()
            }))
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Starts the no-op processor on a free loopback port, on a thread of its own; returns the port.
pub fn start() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the no-op processor");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |accepted| accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream)),
            );
            let _ = tonic::transport::Server::builder()
                .add_service(ExternalProcessorServer::new(Noop))
                .serve_with_incoming(incoming)
                .await;
        });
    });
    port
}
