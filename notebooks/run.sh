#!/usr/bin/env bash
# Executes the notebooks headless with Jupyter's nbconvert and the GoNB kernel, and saves each one in
# place with its outputs (figures included) when every cell succeeded. Installs what is missing:
# Debian's jupyter-nbconvert and jupyter-client (needs root and apt), and GoNB, goimports and gopls
# at the versions pinned in notebooks/tools/go.mod (built with `go install tool`).
#
# Usage: bash notebooks/run.sh [notebook.ipynb ...]    (default: every notebooks/*.ipynb)
#        Notebook paths are relative to the folder it is run from (e.g. notebooks/04-three-front-ends.ipynb
#        from the repository root, or 04-three-front-ends.ipynb from notebooks/).
# Environment: CELL_TIMEOUT seconds per cell (default 300).
#
# GoNB reports a cell whose program exits non-zero (log.Fatal, panic, a failing `!` command) only
# as "exit status N" on stderr, not as a Jupyter error, so nbconvert alone would pass it: after
# executing, nbcheck fails the notebook on any error output, on any output written to stderr, and
# when no cell displayed a figure.
set -euo pipefail
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
# The notebooks are named relative to where the script is run: resolve them before changing folder.
notebooks=()
for nb in "$@"; do
  if ! [ -f "$nb" ]; then
    echo "notebooks/run.sh: $nb: no such notebook (paths are relative to $(pwd))" >&2
    exit 2
  fi
  notebooks+=("$(cd "$(dirname "$nb")" && pwd)/$(basename "$nb")")
done
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export PATH="/usr/local/go/bin:$PATH"
gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
cell_timeout="${CELL_TIMEOUT:-300}"
gonb_version="$(awk '$1 == "github.com/janpfeifer/gonb" && $2 ~ /^v/ { print $2 }' tools/go.mod)"

say() { printf '== %s\n' "$*"; }

# Debian's Jupyter runs under /usr/bin/python3, whatever python3 comes first on PATH.
if ! [ -x /usr/bin/jupyter-nbconvert ] || ! [ -x /usr/bin/jupyter-kernelspec ]; then
  say "jupyter-nbconvert or jupyter-client is missing: installing Debian's packages with apt-get (needs root)"
  if [ "$(id -u)" != 0 ]; then
    echo "notebooks/run.sh: jupyter-nbconvert is missing; run as root or apt-get install jupyter-nbconvert jupyter-client" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends jupyter-nbconvert jupyter-client >/dev/null
fi

if ! [ -x "$gobin/goimports" ] || ! [ -x "$gobin/gopls" ] ||
  [ "$("$gobin/gonb" -V 2>/dev/null || true)" != "$gonb_version" ]; then
  say "installing gonb $gonb_version, goimports and gopls into $gobin (go install; downloads modules)"
  (cd tools && GOBIN="$gobin" go install tool)
fi

# `gonb --install` rewrites the kernel spec to point at this gonb binary; cheap and idempotent.
kernel_json="$(/usr/bin/jupyter --data-dir)/kernels/gonb/kernel.json"
if ! grep -qF "\"$gobin/gonb\"" "$kernel_json" 2>/dev/null; then
  say "installing the gonb kernel spec"
  "$gobin/gonb" --install >/dev/null 2>&1 || "$gobin/gonb" --install
fi

if [ ${#notebooks[@]} -eq 0 ]; then notebooks=("$here"/*.ipynb); fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd .. && go build -o "$work/nbcheck" ./notebooks/nbcheck)
status=0
for nb in "${notebooks[@]}"; do
  name="$(basename "$nb")"
  if ! grep -qF "gonb@$gonb_version" "$nb"; then
    echo "notebooks/run.sh: $name does not pin github.com/janpfeifer/gonb@$gonb_version as tools/go.mod does" >&2
    status=1
    continue
  fi
  say "executing $name"
  start=$SECONDS
  # The kernel starts in the notebook's folder; the output goes to a scratch copy first so that a
  # failed run never overwrites the saved notebook. Errors are allowed here and found by nbcheck,
  # which also sees the failures GoNB does not report as errors.
  if ! /usr/bin/jupyter nbconvert --to notebook --execute --allow-errors --log-level=WARN \
    --ExecutePreprocessor.kernel_name=gonb \
    --ExecutePreprocessor.timeout="$cell_timeout" \
    --ExecutePreprocessor.record_timing=False \
    --output-dir="$work" --output="$name" "$nb" 2>"$work/$name.log"; then
    # The end of nbconvert's traceback, without the kernel's log lines.
    grep -v '^[IWE][0-9]\{4\} ' "$work/$name.log" | awk '/^[a-zA-Z_.]*(Error|Exception)/ { on = 1 } on' | tail -n 20 >&2 || true
    echo "notebooks/run.sh: $name failed" >&2
    status=1
    continue
  fi
  if ! "$work/nbcheck" -figures -name "$name" "$work/$name"; then
    failed="${TMPDIR:-/tmp}/${name%.ipynb}.failed.ipynb"
    cp "$work/$name" "$failed"
    echo "notebooks/run.sh: $name: a cell failed; executed copy saved as $failed" >&2
    status=1
    continue
  fi
  cp "$work/$name" "$nb"
  say "$name ok in $((SECONDS - start)) s"
done
exit $status
