#!/usr/bin/env bash
# A throw-away OCI registry on 127.0.0.1 for tests and the demo (Debian's docker-registry, no auth).
#
#   scripts/registry.sh start PORT DIR   serve on 127.0.0.1:PORT, storage and logs under DIR; waits until ready
#   scripts/registry.sh stop DIR         stop the registry started with that DIR
#   scripts/registry.sh install          install docker-registry when missing (root with apt-get only)
#
# Exit codes: 0 ok, 1 failed to start, 3 docker-registry is not installed and cannot be installed here.
set -euo pipefail

binary() { command -v docker-registry || command -v registry || true; }

install() {
  [ -n "$(binary)" ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "registry.sh: docker-registry is not installed; install Debian's docker-registry package" >&2
    return 3
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; }
  [ -n "$(binary)" ] || return 3
}

# true when GET /v2/ on 127.0.0.1:PORT answers 200 (plain bash, no curl needed)
answers() {
  local status
  status=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
             && head -n 1 <&3) 2>/dev/null || true)
  [[ $status == *" 200 "* ]]
}

start() {
  local port=$1 dir=$2
  install || exit $?
  mkdir -p "$dir/storage"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
    echo "registry.sh: already running (pid $(cat "$dir/registry.pid"))" >&2
    exit 1
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  # setsid: the registry gets its own process group, so stopping it never touches the caller's
  setsid "$(binary)" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 1 100); do
    if ! kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
      echo "registry.sh: the registry exited at start; its log:" >&2
      cat "$dir/registry.log" >&2
      rm -f "$dir/registry.pid"
      exit 1
    fi
    if answers "$port"; then
      echo "registry on 127.0.0.1:$port (pid $(cat "$dir/registry.pid"), storage $dir/storage)"
      return 0
    fi
    sleep 0.1
  done
  echo "registry.sh: no answer on 127.0.0.1:$port after 10 s; its log:" >&2
  cat "$dir/registry.log" >&2
  stop "$dir"
  exit 1
}

stop() {
  local dir=$1 pid
  [ -f "$dir/registry.pid" ] || return 0
  pid=$(cat "$dir/registry.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/registry.pid"
}

case "${1:-}" in
  start) [ $# -eq 3 ] || { echo "usage: $0 start PORT DIR" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  install) install ;;
  *) echo "usage: $0 start PORT DIR | stop DIR | install" >&2; exit 2 ;;
esac
