#!/usr/bin/env bash
# Builds upstream MetalLB v0.12.1's `controller` and `speaker` binaries from the Go module proxy
# into a cache directory, to measure them beside metallb-py (bench/upstream_*.py,
# docs/upstream.md). Only binaries are built: no upstream source or text enters this repository.
# Idempotent: a second run with both binaries present does nothing.
#
#   bash scripts/build-upstream-metallb.sh            # prints the directory holding the binaries
#   UPSTREAM_METALLB_CACHE=/some/dir bash scripts/... # where to keep them
#
# go.universe.tf/metallb pins the k8s.io modules with `replace` lines in its go.mod, and a
# dependency's replace lines do not apply to the module that requires it. A wrapper module
# requires go.universe.tf/metallb at the release and gets the same replace lines, generated at
# build time from the go.mod the proxy serves (`go mod download -json` names its path).
set -euo pipefail

METALLB_VERSION="${METALLB_VERSION:-0.12.1}"
CACHE="${UPSTREAM_METALLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metallb-py/upstream-metallb}"
OUT="$CACHE/v$METALLB_VERSION"
MODULE=go.universe.tf/metallb

# Every `old => new version` replace of a go.mod, block or one-line form, as `old=new@version`
# (a replace by a local path cannot apply outside the release's tree: skipped).
replace_args() {
  awk '
    /^replace \(/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block && NF == 4 && $2 == "=>" { print $1 "=" $3 "@" $4 }
    !block && $1 == "replace" && NF == 5 && $3 == "=>" { print $2 "=" $4 "@" $5 }
  ' "$1"
}
if [[ "${1:-}" == "--print-replaces" ]]; then  # for tests/realapi/test_upstream_build.py
  replace_args "$2"
  exit 0
fi

if [[ -x "$OUT/controller" && -x "$OUT/speaker" ]]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { echo "build-upstream-metallb: Go is not installed" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# -mod=mod: the wrapper's go.sum is written as the build resolves (the release declares go 1.16).
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0
step() { printf '[build-upstream-metallb %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

step "MetalLB v$METALLB_VERSION: resolving $MODULE from the module proxy"
cd "$WORK"
go mod init metallb-py.example/upstream-metallb >/dev/null 2>&1
go mod edit -require="$MODULE@v$METALLB_VERSION"
gomod="$(go mod download -json "$MODULE@v$METALLB_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
replaces="$(replace_args "$gomod")"
count=0
for r in $replaces; do
  go mod edit -replace="$r"
  count=$((count + 1))
done
step "copied $count replace lines from the release's go.mod"
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
GO
step "go mod tidy (downloads the dependencies)"
go mod tidy >&2
# Says where the binary came from in its start-up log line (`commit`, `branch`).
ldflags="-X $MODULE/internal/version.gitCommit=module-proxy-v$METALLB_VERSION"
ldflags+=" -X $MODULE/internal/version.gitBranch=v$METALLB_VERSION"
for main in controller speaker; do
  step "compiling $main (about a minute and a half the first time)"
  go build -trimpath -ldflags="$ldflags" -o "$OUT/$main.tmp" "$MODULE/$main"
done
for main in controller speaker; do
  mv "$OUT/$main.tmp" "$OUT/$main"
done
go version > "$OUT/BUILD-INFO"
go list -m all | grep -E "^($MODULE|k8s.io/(api|apimachinery|client-go)|github.com/hashicorp/memberlist|github.com/osrg/gobgp) " \
  >> "$OUT/BUILD-INFO"
step "done: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
