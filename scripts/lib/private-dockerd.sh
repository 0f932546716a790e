# A dockerd of a script's own: its own data root, socket and network namespace (only lo), so it
# never touches the machine's engine, its swarm or its ports. Sourced by scripts/package (the
# release smoke run) and scripts/package-test; the recipe is the product brief's, as in
# test/helpers/dockerd.ts.
#
# private_dockerd_start DIR SOCKET [DOCKERD ARGS...]: starts it and waits until it answers;
#   sets PRIVATE_DOCKERD_PID. Its log is DIR/dockerd.log.
# private_dockerd_stop DIR: stops the daemon started for DIR (by its pid), its containerd, its
#   mounts and its namespace. Safe to call twice, or when the start failed.

private_dockerd_netns() { echo "airlock-pd-$(printf '%s' "$1" | sha256sum | cut -c1-10)"; }

private_dockerd_start() {
  local dir="$1" sock="$2"; shift 2
  local ns; ns="$(private_dockerd_netns "$dir")"
  command -v dockerd >/dev/null || { echo "private dockerd: dockerd is missing (apt-get install docker.io)" >&2; return 1; }
  mkdir -p "$dir/data" "$dir/exec" "$(dirname "$sock")"
  rm -f "$dir/docker.pid" "$sock"
  [ -e "/var/run/netns/$ns" ] || ip netns add "$ns" || return 1
  nsenter --net="/var/run/netns/$ns" ip link set lo up || return 1
  # nsenter, not `ip netns exec`: the latter remounts /sys, which dockerd then fails on.
  setsid nsenter --net="/var/run/netns/$ns" dockerd \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" -H "unix://$sock" \
    --bridge none --iptables=false --ip6tables=false "$@" >>"$dir/dockerd.log" 2>&1 </dev/null &
  PRIVATE_DOCKERD_PID=$!
  echo "$PRIVATE_DOCKERD_PID" >"$dir/started.pid"
  local i
  for i in $(seq 240); do
    if curl -fsS --max-time 2 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1; then return 0; fi
    kill -0 "$PRIVATE_DOCKERD_PID" 2>/dev/null || { echo "private dockerd exited:" >&2; tail -5 "$dir/dockerd.log" >&2; return 1; }
    sleep 0.25
  done
  echo "private dockerd did not answer on $sock within 60 s:" >&2
  tail -5 "$dir/dockerd.log" >&2
  return 1
}

private_dockerd_stop() {
  local dir="$1" pid cpid i m
  pid="$(cat "$dir/started.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/started.pid"
  # dockerd's own containerd can outlive it.
  cpid="$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)"
  if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then kill -KILL "$cpid" 2>/dev/null || true; fi
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  ip netns del "$(private_dockerd_netns "$dir")" 2>/dev/null || true
}
