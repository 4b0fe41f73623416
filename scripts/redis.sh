#!/usr/bin/env bash
# Starts and stops a throwaway redis-server on 127.0.0.1 for the cache's shared-tier tests.
#
#   scripts/redis.sh start PORT DIR   start on 127.0.0.1:PORT, no persistence, files in DIR;
#                                     returns once it answers PING
#   scripts/redis.sh stop DIR         stop the server started with DIR (SIGKILL: a crash)
#
# Exit status 3 means redis-server is not installed. The tests use Debian's package:
#   apt-get install -y redis-server=5:7.0.15-1~deb12u7
set -euo pipefail

missing() {
    echo "redis-server not found; install it with: apt-get install -y redis-server" >&2
    exit 3
}

case "${1:-}" in
start)
    port="${2:?port}"
    dir="${3:?dir}"
    command -v redis-server >/dev/null 2>&1 || missing
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --save "" --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 1 100); do
        if [ -s "$dir/redis.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; then
            exit 0
        fi
        sleep 0.05
    done
    echo "redis-server did not answer on 127.0.0.1:$port; see $dir/redis.log" >&2
    exit 1
    ;;
stop)
    dir="${2:?dir}"
    if [ -s "$dir/redis.pid" ]; then
        pid="$(cat "$dir/redis.pid")"
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        rm -f "$dir/redis.pid"
    fi
    ;;
*)
    echo "usage: $0 start PORT DIR | stop DIR" >&2
    exit 2
    ;;
esac
