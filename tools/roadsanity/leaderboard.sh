#!/bin/sh
# Regenerates the README's "Evaluating the maps" leaderboard: ROAD (probe faithfulness --metrics road)
# and the sanity checks (probe sanity --data) on the first N Fashion-MNIST test images for each model
# folder given, then the table (tools/roadsanity/leaderboard). Run from the repository root:
#   tools/roadsanity/leaderboard.sh OUTDIR N testdata/trained/fourier testdata/trained/learned testdata/trained/conv
set -eu
out=$1; n=$2; shift 2
data=cmd/probe/demodata/t10k-images-idx3-ubyte.gz
mkdir -p "$out"; [ -x "$out/probe" ] || go build -o "$out/probe" ./cmd/probe
args=""
for model in "$@"; do
	name=$(basename "$model")
	"$out/probe" faithfulness --model "$model" --data "$data" --limit "$n" --methods all --metrics road \
		--window 4 --stride 2 --quiet --out "$out/$name-road"
	"$out/probe" sanity --model "$model" --data "$data" --limit "$n" --methods all \
		--window 4 --stride 2 --out "$out/$name-sanity" > /dev/null
	args="$args $name $out/$name-road $out/$name-sanity"
done
go run ./tools/roadsanity/leaderboard $args
