#!/usr/bin/env bash
# Side by side: one training step (forward + mean cross-entropy + backward to every parameter + AdamW)
# in PyTorch (perceiver_train_step.py) and in perceiverkit (core's BenchmarkTrainStep), same
# architecture and batch, 2 threads each, alternating ROUNDS times so that both see the same load; the
# load average is printed before each run. SIZE=full (the released Fourier model at 224², batch 2) or
# SIZE=demo (probe demo's 28² model, batch 32). Needs python3-torch; runs under /usr/bin/python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${ROUNDS:-2}"
size="${SIZE:-full}"
case "$size" in
  full) batch=2 runs=2 bench='TrainStep/^full$/batch2$' ;;
  demo) batch=32 runs=10 bench='TrainStep/demo/batch32$' ;;
  *) echo "SIZE is full or demo" >&2; exit 2 ;;
esac
export PATH="/usr/local/go/bin:$PATH"
(cd "$here/../.." && go test -c -o /tmp/core-trainstep.test ./core)
for r in $(seq "$rounds"); do
  echo "== round $r: $(cut -d' ' -f1-3 /proc/loadavg) load average"
  echo "-- PyTorch"
  /usr/bin/python3 "$here/perceiver_train_step.py" --size "$size" --batch "$batch" --runs "$runs" --threads 2
  echo "== $(cut -d' ' -f1-3 /proc/loadavg) load average"
  echo "-- perceiverkit"
  (cd "$here/../../core" && /tmp/core-trainstep.test -test.run XXX -test.bench "$bench" -test.benchtime "${runs}x" | grep -E '^Benchmark')
done
