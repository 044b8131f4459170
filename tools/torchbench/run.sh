#!/usr/bin/env bash
# Side by side, in one run: PyTorch (perceiver_autograd.py) and probe bench --backward on the
# full-size Fourier architecture with random weights, one 224² image, 2 threads each.
# Needs python3-torch (Debian: apt-get install -y python3-torch). Timings on a shared machine vary:
# run when it is quiet, and compare the two within the same run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${RUNS:-3}"
export PATH="/usr/local/go/bin:$PATH"
(cd "$here/../.." && go build -o /tmp/probe-torchbench ./cmd/probe)
echo "== PyTorch"
/usr/bin/python3 "$here/perceiver_autograd.py" --runs "$runs" --threads 2
echo "== perceiverkit"
/tmp/probe-torchbench bench --random --runs "$runs" --backward
