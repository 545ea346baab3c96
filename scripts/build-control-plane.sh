#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the tests and the lab: kube-apiserver and kubectl
# (k8s.io/kubernetes) and etcd (go.etcd.io/etcd/server/v3), pinned, from the Go module proxy,
# into a cache directory. Idempotent: a second run with the binaries present does nothing.
#
#   bash scripts/build-control-plane.sh            # prints the directory holding the binaries
#   CONTROL_PLANE_CACHE=/some/dir bash scripts/...  # where to keep them
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io staging module with
# a local path. A wrapper module requires k8s.io/kubernetes at the release and replaces each of
# those staging modules with k8s.io/<name> v0.<minor>.<patch> from the proxy. etcd's server module
# is a main package whose sibling modules resolve from its own requirements.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.32.13}"   # within kubectl 1.32's skew (the image's kubectl)
ETCD_VERSION="${ETCD_VERSION:-3.5.21}"  # the etcd 3.5 line that Kubernetes 1.32 runs on
CACHE="${CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metallb-py/control-plane}"
OUT="$CACHE/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" && -x "$OUT/kubectl" ]]; then
  echo "$OUT" > "$CACHE/current"  # where metallb_lab.control_plane looks
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { echo "build-control-plane: Go is not installed" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0
step() { printf '[build-control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

step "kube-apiserver and kubectl v$K8S_VERSION (first build takes several minutes)"
mkdir "$WORK/k8s" && cd "$WORK/k8s"
go mod init metallb-py.example/control-plane >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
staging="$(awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f&&$1 ~ /^k8s\.io\//{print $1}' "$gomod")"
for name in $staging; do
  go mod edit -replace="$name=$name@v0.${K8S_VERSION#1.}"
done
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy >&2
# The version the binaries report (`kubectl version`, discovery), as the release build sets it.
minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
step "compiling kube-apiserver"
go build -trimpath -ldflags="$ldflags" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
step "compiling kubectl"
go build -trimpath -ldflags="$ldflags" -o "$OUT/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl

step "etcd v$ETCD_VERSION"
mkdir "$WORK/etcd" && cd "$WORK/etcd"
go mod init metallb-py.example/etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod tidy >&2
go build -trimpath -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3

for bin in kube-apiserver kubectl etcd; do
  mv "$OUT/$bin.tmp" "$OUT/$bin"
done
echo "$OUT" > "$CACHE/current"  # where metallb_lab.control_plane looks
step "done: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
