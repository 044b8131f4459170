#!/usr/bin/env bash
# CI check on a real (one-node) Slurm cluster: bring it up, run deploy/slurm/extract.sbatch as a
# 4-task array over the demo data with one task requeued (scontrol requeue) while it runs, compare
# the merged parts row for row with a single-process run, bring the cluster down.
#
# The requeue must land mid-run, but a demo shard takes well under a second. So task 1's first
# attempt runs probe through a wrapper that pauses it (SIGSTOP) once its first checkpoint is on
# disk; the script then requeues that task. Slurm continues and terminates the paused probe, and
# the second attempt resumes from the checkpoints. Bounded by TIMEOUT seconds (default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
TIMEOUT=${TIMEOUT:-300}
cluster=deploy/slurm/local-cluster.sh

work=$(mktemp -d /tmp/perceiverkit-slurm-ci.XXXXXX)
chmod 755 "$work"
job=""
cleanup() {
  local rc=$?
  [ -n "$job" ] && scancel "$job" 2>/dev/null || true
  "$cluster" down || true
  if [ "$rc" != 0 ]; then
    echo "slurm check failed; task logs:" >&2
    cat "$work"/task-*.log >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
deadline=$((SECONDS + TIMEOUT))
fail() { echo "slurm check: $*" >&2; exit 1; }
wait_for() { # wait_for WHAT COMMAND...: poll until COMMAND succeeds or the deadline passes
  local what=$1; shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 0.05
  done
}

go build -o "$work/probe" ./cmd/probe
"$work/probe" demo --out "$work/demo" >/dev/null
model=$work/demo/model data=$work/demo/data/fashion-mnist
"$work/probe" extract --model "$model" --data "$data" --out "$work/single.parquet" --layers all --batch 4 --quiet

# The wrapper: task 1, first attempt, small checkpoints, paused after the first one.
cat >"$work/probe-paused" <<EOF
#!/bin/bash
if [ "\$SLURM_ARRAY_TASK_ID" != 1 ] || [ "\${SLURM_RESTART_COUNT:-0}" != 0 ]; then
  exec "$work/probe" "\$@"
fi
"$work/probe" "\$@" --workers 1 --row-group-mb 0.002 &
pid=\$!
until ls "$work/parts/.features-part-2-of-4.parquet.partial"/chunk-* >/dev/null 2>&1; do
  kill -0 \$pid 2>/dev/null || { echo "probe ended before its first checkpoint" >&2; touch "$work/failed"; exit 1; }
  sleep 0.002
done
kill -STOP \$pid
touch "$work/paused"
wait \$pid
EOF
chmod +x "$work/probe-paused"

"$cluster" up
mkdir -p "$work/parts"
job=$(PROBE="$work/probe-paused" MODEL=$model DATA=$data OUT=$work/parts/features.parquet LAYERS=all BATCH=4 \
  sbatch --parsable --array=0-3 --cpus-per-task=1 --mem=0 --time=10 --open-mode=append \
  --output="$work/task-%a.log" --chdir="$work" deploy/slurm/extract.sbatch)
echo "submitted array job $job"
until [ -e "$work/paused" ]; do
  [ ! -e "$work/failed" ] || fail "task 1 ended before it could be requeued mid-run"
  [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for task 1 to pause mid-run"
  sleep 0.05
done
scontrol requeue "${job}_1"
echo "requeued task ${job}_1 while it ran"
# Slurm holds a requeued job for two minutes (its begin time); let it start again in 3 s. Not
# at once: slurmd refuses a launch whose credential dates from the second the old one was revoked
# ("Job credential revoked"), and the task would fail.
wait_for "task 1 to be pending again" sh -c "squeue -h -j ${job}_1 -o %T | grep -q PENDING"
scontrol update JobId="${job}_1" StartTime=now+3
wait_for "the array to finish" sh -c "[ -z \"\$(squeue -h -j $job 2>/dev/null)\" ]"

for k in 0 1 2 3; do
  state=$(scontrol show job "${job}_$k" | grep -o 'JobState=[A-Z_]*' | head -n 1)
  [ "$state" = JobState=COMPLETED ] || fail "task $k ended in $state"
done
restarts=$(scontrol show job "${job}_1" | grep -o 'Restarts=[0-9]*')
[ "$restarts" = Restarts=1 ] || fail "task 1: $restarts, want Restarts=1"
grep -q 'attempt 2' "$work/task-1.log" || fail "task 1 has no second attempt in its log"
resumed=$(grep -o '[0-9]* already present' "$work/task-1.log" | head -n 1)
case "$resumed" in "" | "0 already present") fail "task 1's second attempt did not resume (${resumed:-no summary})" ;; esac
echo "task 1 resumed: $resumed"

# Row for row: every column of every row, as exported from the parts folder and from the single run.
"$work/probe" export --features "$work/parts" --format csv --out "$work/parts.csv"
"$work/probe" export --features "$work/single.parquet" --format csv --out "$work/single.csv"
rows=$(($(wc -l <"$work/single.csv") - 1))
[ "$rows" = 700 ] || fail "single run has $rows rows, want 700"
cmp "$work/parts.csv" "$work/single.csv" || fail "the merged parts differ from the single-process run"
echo "slurm check: 4 parts (one requeued mid-run) equal the single-process run, $rows rows"
