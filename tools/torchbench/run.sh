#!/usr/bin/env bash
# Side by side: PyTorch (perceiver_autograd.py) and probe bench --backward on the full-size Fourier
# architecture with random weights, one 224² image, 2 threads each, alternating ROUNDS times (one
# timed run each, after a warm-up) so that both see the same load on a shared machine; the load
# average is printed before each round. Needs python3-torch (Debian: apt-get install -y
# python3-torch); it runs under Debian's /usr/bin/python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${ROUNDS:-3}"
export PATH="/usr/local/go/bin:$PATH"
(cd "$here/../.." && go build -o /tmp/probe-torchbench ./cmd/probe)
for r in $(seq "$rounds"); do
  echo "== round $r: $(cut -d' ' -f1-3 /proc/loadavg) load average"
  echo "-- PyTorch"
  /usr/bin/python3 "$here/perceiver_autograd.py" --runs 1 --threads 2
  echo "-- perceiverkit"
  /tmp/probe-torchbench bench --random --runs 1 --backward | grep -E '^(forward|peak)'
done
