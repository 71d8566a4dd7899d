#!/usr/bin/env bash
# A private Docker daemon (Debian's docker.io) for the container scripts, kept apart from any
# system daemon: its own data root, exec root, pid file and unix socket, no iptables rules and no
# bridge (the Sluice images are run with --network host only).
#
#   scripts/dockerd.sh start [DIR]   starts it in the background, waits until it answers (60 s at
#                                    most) and prints `export DOCKER_HOST=unix://...` on stdout:
#                                    eval "$(scripts/dockerd.sh start)"
#                                    If a daemon of this script already runs in DIR it prints the
#                                    same line and starts nothing.
#   scripts/dockerd.sh host [DIR]    prints the DOCKER_HOST of the daemon running in DIR, or exits 1
#   scripts/dockerd.sh stop [DIR]    stops the daemon running in DIR (SIGTERM by the pid it wrote,
#                                    SIGKILL after 30 s) and leaves no mount behind
#
# DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/dockerd) keeps the images between runs;
# compat_tests/container_test.sh gives its own throwaway DIR instead. Exit status 77: a daemon
# cannot be started here at all (not root, no dockerd); the message says which.
set -euo pipefail

SKIP=77
cmd="${1:-}"
dir="${2:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/dockerd}"
case "$cmd" in start | stop | host) ;; *)
  echo "usage: $0 start|host|stop [DIR]" >&2
  exit 2
  ;;
esac

# The client that goes with Debian's daemon; another `docker` on PATH works too (API negotiation).
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pidfile="$dir/dockerd.pid"
# Unix socket paths are limited to 107 bytes and containerd puts its own socket two levels below
# the exec root: a long DIR gets a short exec root under /tmp, remembered in DIR/exec-root.
exec_root_file="$dir/exec-root"

# The pid in DIR/dockerd.pid if that process is a dockerd with DIR's data root, else nothing.
running_pid() {
  local pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "--data-root=$dir/data" || return 1
  echo "$pid"
}

socket_of() {
  echo "$(cat "$exec_root_file")/docker.sock"
}

answers() {
  timeout 10 "$DOCKER" -H "unix://$1" version >/dev/null 2>&1
}

unmount_leftovers() {
  # A daemon that had to be killed can leave overlay and shm mounts under its roots.
  local root m
  for root in "$dir/data" "$(cat "$exec_root_file" 2>/dev/null || true)"; do
    [[ -n "$root" ]] || continue
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  done
}

case "$cmd" in
host)
  pid="$(running_pid)" || exit 1
  sock="$(socket_of)"
  answers "$sock" || exit 1
  echo "export DOCKER_HOST=unix://$sock"
  ;;

start)
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "dockerd.sh: starting a Docker daemon needs root (rootless Docker is not set up)" >&2
    exit "$SKIP"
  fi
  dockerd="$(command -v dockerd || true)"
  [[ -n "$dockerd" ]] || { [[ -x /usr/sbin/dockerd ]] && dockerd=/usr/sbin/dockerd; }
  if [[ -z "$dockerd" ]]; then
    echo "dockerd.sh: no dockerd (Debian package docker.io: scripts/install-deps.sh test)" >&2
    exit "$SKIP"
  fi
  exec 9>"$dir/lock"
  flock -w 60 9 || { echo "dockerd.sh: $dir/lock is held by another start" >&2; exit 1; }
  if pid="$(running_pid)"; then
    sock="$(socket_of)"
    if answers "$sock"; then
      echo "dockerd.sh: already running in $dir (pid $pid)" >&2
      echo "export DOCKER_HOST=unix://$sock"
      exit 0
    fi
    echo "dockerd.sh: dockerd $pid in $dir does not answer; stop it first: $0 stop $dir" >&2
    exit 1
  fi
  unmount_leftovers
  if ((${#dir} <= 60)); then
    exec_root="$dir/x"
    mkdir -p "$exec_root"
  else
    exec_root="$(mktemp -d /tmp/sluice-dockerd.XXXXXX)"
  fi
  echo "$exec_root" >"$exec_root_file"
  sock="$exec_root/docker.sock"
  rm -f "$sock"
  : >"$dir/dockerd.log"
  # setsid: the daemon outlives this script and a Ctrl-C in the terminal that started it. The
  # lock descriptor is closed for it.
  setsid "$dockerd" \
    "--data-root=$dir/data" --exec-root="$exec_root" --pidfile="$pidfile" -H "unix://$sock" \
    --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false --bridge=none \
    >>"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
  pid=$!
  for ((i = 0; i < 120; i++)); do # 60 s
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dockerd.sh: dockerd exited while starting; the end of $dir/dockerd.log:" >&2
      tail -n 20 "$dir/dockerd.log" >&2
      if grep -qiE 'operation not permitted|permission denied' "$dir/dockerd.log"; then
        exit "$SKIP" # e.g. inside a container without the privileges to run one
      fi
      exit 1
    fi
    if answers "$sock"; then
      echo "dockerd.sh: started dockerd (pid $pid) in $dir" >&2
      echo "export DOCKER_HOST=unix://$sock"
      exit 0
    fi
    sleep 0.5
  done
  echo "dockerd.sh: dockerd (pid $pid) did not answer within 60 s; stopping it" >&2
  tail -n 20 "$dir/dockerd.log" >&2
  kill -KILL "$pid" 2>/dev/null || true
  exit 1
  ;;

stop)
  if ! pid="$(running_pid)"; then
    unmount_leftovers
    exit 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do # 30 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd.sh: dockerd $pid ignored SIGTERM for 30 s; killing it" >&2
    # Its containerd (a child it started) would outlive it: kill that one too, by its pid file.
    cpid="$(cat "$(cat "$exec_root_file")/containerd/containerd.pid" 2>/dev/null || true)"
    kill -KILL "$pid" 2>/dev/null || true
    if [[ "$cpid" =~ ^[0-9]+$ ]]; then kill -KILL "$cpid" 2>/dev/null || true; fi
  fi
  unmount_leftovers
  exec_root="$(cat "$exec_root_file" 2>/dev/null || true)"
  [[ "$exec_root" == /tmp/sluice-dockerd.* ]] && rm -rf "$exec_root"
  rm -f "$pidfile"
  echo "dockerd.sh: stopped dockerd (pid $pid) in $dir" >&2
  ;;
esac
