#!/usr/bin/env bash
# Remakes testdata/sae (the SAE fixtures) and the PyTorch reference results the Go tests compare
# with (sae/reference_test.go). Run from the repository root with a built probe on PATH:
#   go build -o /tmp/probe ./cmd/probe && PATH=/tmp:$PATH tools/sae/make_fixtures.sh
# The demo fixtures are the random demo model's (probe demo) block-2 tokens of 700 Fashion-MNIST
# images, every fourth latent, and their block2_mean column; the synthetic one is make_synthetic.py's.
# Each reference run takes its split from a `probe sae train` report (holdout_ids) so that both
# train on the same images; the Go test checks that the ids agree.
set -euo pipefail
T=testdata/sae
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
if [ "${REMAKE_DATA:-0}" = 1 ]; then
  probe demo --out "$W/demo" >/dev/null
  rm -rf "$T/demo.tokens" "$T/demo.parquet"
  probe extract --model "$W/demo/model" --data "$W/demo/data/fashion-mnist" --out "$T/demo.parquet" \
    --layers block2_mean --tokens block2 --token-latents 0-31:4 --quiet
  /usr/bin/python3 tools/sae/make_synthetic.py "$T/synthetic.tokens"
fi
probe export --features "$T/demo.parquet" --columns block2_mean --out "$W/npy" >/dev/null
ref() { # name, data flags for probe, data flags for the reference, hyperparameters
  local name=$1 gof=$2 pyf=$3 hp=$4
  probe sae train $gof --out "$W/$name" $hp --seed 1 --holdout 0.1 --no-splice --quiet >/dev/null
  /usr/bin/python3 tools/sae/sae_reference.py $pyf --split "$W/$name/report.json" $hp --seed 1 --out "$T/reference/$name.json" >/dev/null
}
ref demo_tokens "--tokens $T/demo.tokens/block2" "--tokens $T/demo.tokens/block2" "--dict 128 --k 4 --epochs 10 --batch 128 --lr 1e-3"
ref demo_column "--features $T/demo.parquet --column block2_mean" "--npy $W/npy/block2_mean.npy --ids $W/npy/ids.txt" "--dict 64 --k 2 --epochs 50 --batch 64 --lr 1e-3"
ref synthetic "--tokens $T/synthetic.tokens/sparse" "--tokens $T/synthetic.tokens/sparse" "--dict 128 --k 4 --epochs 30 --batch 64 --lr 1e-3"
