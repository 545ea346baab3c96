#!/usr/bin/env bash
# Installs everything metallb-py, its tests, its benchmarks and its lab need on a fresh
# Debian 12 machine (run as root). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 procps iputils-ping iputils-arping ndisc6 tcpdump curl
  frr bird2 gobgpd keepalived prometheus
  nftables
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The packaged daemons must not run on the host: tests start their own inside namespaces.
for svc in frr bird prometheus prometheus-node-exporter keepalived gobgpd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

# The product (editable, with its test tools) and the lab package beside it (editable too, so
# tests and the lab run the working tree).
PIP=(python3 -m pip install --quiet)
PKGS=(-e '.[test]' -e ./lab)
if ! "${PIP[@]}" "${PKGS[@]}" 2>/tmp/metallb-py-pip.err; then
  if grep -q externally-managed /tmp/metallb-py-pip.err; then
    "${PIP[@]}" --break-system-packages "${PKGS[@]}"
  else
    cat /tmp/metallb-py-pip.err >&2
    exit 1
  fi
fi

# A real Kubernetes control plane (kube-apiserver, etcd, kubectl) for the real-server test tier
# and `metallb-py lab --apiserver kube-apiserver`: built once from the Go module proxy into a
# cache (several minutes the first time, seconds after). Needs Go; without it that tier is
# skipped.
if command -v go >/dev/null; then
  bash scripts/build-control-plane.sh >/dev/null
fi
