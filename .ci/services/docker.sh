# shellcheck shell=bash
# A private Docker engine for the docker executor's tests, sourced by .ci/run (set -euo pipefail).
#
# Installs Debian's docker.io and debootstrap when missing, starts dockerd on its own socket (no
# iptables, no bridge: containers run with --network none, and nothing of the host's own engine is
# touched), waits until `docker version` answers and exports DOCKER_HOST. Idempotent: an engine
# already answering on that socket is reused. The tests build the offline image on demand
# (`w2s image build --offline`; the debootstrap rootfs is cached under ~/.cache/w2s/docker).

W2S_DOCKERD_DIR="${W2S_DOCKERD_DIR:-/tmp/w2s-ci-dockerd}"
export DOCKER_HOST="unix://${W2S_DOCKERD_DIR}/docker.sock"

_w2s_docker_answers() {
  timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_w2s_docker_start() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  command -v dockerd >/dev/null 2>&1 || { echo "CI docker: dockerd missing after apt-get install docker.io" >&2; return 1; }

  if _w2s_docker_answers; then
    echo "CI docker: reusing the engine at $DOCKER_HOST ($(docker version --format '{{.Server.Version}}'))"
    return 0
  fi
  mkdir -p "$W2S_DOCKERD_DIR/root" "$W2S_DOCKERD_DIR/exec"
  if [ -f "$W2S_DOCKERD_DIR/pid" ] && kill -0 "$(cat "$W2S_DOCKERD_DIR/pid")" 2>/dev/null; then
    echo "CI docker: dockerd (pid $(cat "$W2S_DOCKERD_DIR/pid")) runs but does not answer on $DOCKER_HOST" >&2
    tail -n 20 "$W2S_DOCKERD_DIR/log" >&2 || true
    return 1
  fi
  rm -f "$W2S_DOCKERD_DIR/docker.sock" "$W2S_DOCKERD_DIR/pid"
  # containerd comes with docker.io; dockerd starts its own when none is configured
  nohup dockerd \
    --host "$DOCKER_HOST" \
    --iptables=false --bridge=none \
    --data-root "$W2S_DOCKERD_DIR/root" \
    --exec-root "$W2S_DOCKERD_DIR/exec" \
    --pidfile "$W2S_DOCKERD_DIR/pid" \
    >"$W2S_DOCKERD_DIR/log" 2>&1 </dev/null &
  local waited=0
  until _w2s_docker_answers; do
    if [ "$waited" -ge 60 ]; then
      echo "CI docker: dockerd did not answer on $DOCKER_HOST within 60 s; its log:" >&2
      tail -n 40 "$W2S_DOCKERD_DIR/log" >&2 || true
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "CI docker: dockerd $(docker version --format '{{.Server.Version}}') on $DOCKER_HOST (${waited}s)"
}

_w2s_docker_start || { echo "CI docker: no Docker engine; the docker tests would fail" >&2; exit 1; }
