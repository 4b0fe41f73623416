//! The Envoy external-processing front end: a gRPC server implementing
//! `envoy.service.ext_proc.v3.ExternalProcessor` beside the HTTP server, with `grpc.health.v1`
//! health that reports SERVING once the engine is warm. Each gRPC stream is one HTTP request
//! through Envoy, answered inline by [`stream::replies`] through the same route flow as
//! `/v1/route`.
//!
//! It runs on its own multi-threaded runtime (the actix system runtime it starts from is
//! single-threaded and hosts the HTTP accept loop), so the streams of many concurrent requests
//! spread over the cores.

mod handoff;
mod render;
mod stream;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Data;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use futures_util::Stream;
use tokio::sync::oneshot;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;

use super::AppState;
use crate::config::{Config, DecisionHeader};

/// How often readiness is polled until the engine is loaded.
const READY_POLL: Duration = Duration::from_millis(50);

/// What every stream shares.
pub(super) struct ExtProcContext {
    state: Data<AppState>,
    decision_headers: Vec<DecisionHeader>,
    decision_timeout: Duration,
    default_model: String,
    max_body_bytes: usize,
    max_response_bytes: usize,
    /// Routed requests waiting for the observe-only stream that sees their answers.
    handoffs: handoff::Handoffs,
}

/// The gRPC service.
struct ExtProc {
    ctx: Arc<ExtProcContext>,
}

#[tonic::async_trait]
impl ExternalProcessor for ExtProc {
    type ProcessStream =
        Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send + 'static>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        Ok(Response::new(Box::pin(stream::replies(
            Arc::clone(&self.ctx),
            request.into_inner(),
        ))))
    }
}

/// Why the ext_proc server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExtProcError {
    /// Its thread could not be started.
    #[error("ext_proc thread: {0}")]
    Runtime(std::io::Error),
    /// The certificate or key of `extproc.tls` could not be used.
    #[error("{0}")]
    Tls(#[from] super::tls::TlsError),
    /// The listen address is unusable.
    #[error("ext_proc cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running ext_proc server; [`ExtProcServer::stop`] ends it.
pub(super) struct ExtProcServer {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExtProcServer {
    /// Binds `config.extproc.addr` and serves on a thread of its own.
    pub(super) fn start(config: &Config, state: Data<AppState>) -> Result<Self, ExtProcError> {
        let addr = config.extproc.addr;
        let identity = config
            .extproc
            .tls
            .as_ref()
            .map(|tls| super::tls::grpc_identity(&tls.cert_file, &tls.key_file))
            .transpose()?;
        // Bound here so a bad address fails start-up; the runtime is built on the server's own
        // thread (a runtime may be neither started nor dropped inside the actix one).
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ExtProcError::Bind { addr, source })?;
        let default_model = config
            .extproc
            .default_model
            .clone()
            .or_else(|| config.scoring.default_model.clone())
            .or_else(|| config.models.first().map(|m| m.name.clone()))
            .unwrap_or_default();
        let ctx = Arc::new(ExtProcContext {
            state,
            decision_headers: config.server.decision_headers.clone(),
            decision_timeout: Duration::from_millis(config.extproc.decision_timeout_ms),
            default_model,
            max_body_bytes: config.server.max_body_bytes,
            max_response_bytes: config.extproc.max_response_bytes,
            handoffs: handoff::Handoffs::default(),
        });
        let grace = Duration::from_secs(config.server.shutdown_timeout_s);
        let (stop, stopped) = oneshot::channel();
        describe();
        let thread = std::thread::Builder::new()
            .name("semrouter-extproc".into())
            .spawn(move || {
                let workers = std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .min(8);
                match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name("semrouter-extproc")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(async move {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => serve(ctx, listener, identity, stopped, grace).await,
                            Err(error) => tracing::error!(%error, "ext_proc listener unusable"),
                        }
                    }),
                    Err(error) => tracing::error!(%error, "ext_proc runtime could not be built"),
                }
            })
            .map_err(ExtProcError::Runtime)?;
        tracing::info!(%addr, tls = config.extproc.tls.is_some(), "ext_proc listening");
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets open streams finish within the shutdown grace, and waits.
    pub(super) fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    ctx: Arc<ExtProcContext>,
    listener: tokio::net::TcpListener,
    identity: Option<Identity>,
    stopped: oneshot::Receiver<()>,
    grace: Duration,
) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_not_serving::<ExternalProcessorServer<ExtProc>>()
        .await;
    let state = ctx.state.clone();
    let watcher = tokio::spawn(async move {
        while state.engine.load().is_none() {
            tokio::time::sleep(READY_POLL).await;
        }
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        reporter
            .set_serving::<ExternalProcessorServer<ExtProc>>()
            .await;
        tracing::info!("ext_proc serving");
        reporter
    });
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    // Small replies on a long-lived HTTP/2 connection: without TCP_NODELAY each one can wait
    // for the peer's delayed ACK (40 ms). The builder's own setting only covers listeners it
    // binds itself, so accepted sockets get it here.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream)),
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = identity {
        builder = match builder.tls_config(ServerTlsConfig::new().identity(identity)) {
            Ok(builder) => builder,
            Err(error) => {
                // The files were checked at start-up; this is tonic refusing them after all.
                tracing::error!(%error, "extproc.tls: the gRPC listener cannot use the certificate");
                return;
            }
        };
    }
    let server = builder
        .add_service(health)
        .add_service(ExternalProcessorServer::new(ExtProc { ctx }))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown_rx.await;
        });
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            if let Ok(Err(error)) = result {
                tracing::error!(%error, "ext_proc server failed");
            }
            return;
        }
        _ = stopped => {}
    }
    watcher.abort();
    let _ = shutdown_tx.send(());
    if tokio::time::timeout(grace, &mut server).await.is_err() {
        tracing::warn!("ext_proc streams still open after the shutdown grace; closing them");
        server.abort();
    }
    tracing::info!("ext_proc stopped");
}

fn describe() {
    metrics::describe_histogram!(stream::MESSAGE_SECONDS, metrics::Unit::Seconds, "Time semrouter spends on one ext_proc message, arrival to replies (the request body's includes the decision), by message");
    metrics::describe_counter!("semrouter_extproc_requests_total", "Requests seen by the ext_proc front end, by outcome (routed, cached, blocked, error, fallback, passthrough)");
    metrics::describe_counter!("semrouter_extproc_fallbacks_total", "ext_proc requests sent to the default model without a decision, by reason (timeout, not_ready)");
}
