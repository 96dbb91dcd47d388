#!/usr/bin/env bash
# Installs the servers the distribution tests talk to: an OCI registry (Debian's docker-registry,
# the CNCF distribution 2.8 server), NATS with JetStream (nats-server 2.9) and htpasswd (basic auth
# for the registry). Tests start their own instances on 127.0.0.1 with free ports and stop them by
# pid (tests/all/support/servers.rs); nothing is left running, and a service the package manager
# may have started at install is stopped so it holds no port.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
PACKAGES=(docker-registry nats-server apache2-utils)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[services] installing apt packages: ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # RUNLEVEL=1: maintainer scripts do not start the daemons (tests run their own).
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for bin in docker-registry nats-server htpasswd; do
  command -v "$bin" >/dev/null || { echo "error: $bin is not installed" >&2; exit 1; }
done
