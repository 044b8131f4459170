package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/sae"
)

// TestExtractTokensMatchForward stores the tokens of two layers and compares them with the hidden
// states of core's forward pass on the same preprocessed images: bit for bit in float32, and as
// numpy's float16 rounding (ties to even) in float16.
func TestExtractTokensMatchForward(t *testing.T) {
	data := idxDataSet(t, 6)
	dir := t.TempDir()
	for _, dt := range []string{"float32", "float16"} {
		out := filepath.Join(dir, dt+".parquet")
		if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "block1_mean",
			"--tokens", "cross,block2", "--tokens-dtype", dt, "--token-latents", "0-7:3", "--quiet"); code != 0 {
			t.Fatal(e)
		}
		m, err := core.Load(tinyDir)
		if err != nil {
			t.Fatal(err)
		}
		src, err := probe.OpenSource(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, layer := range []struct {
			name  string
			state int
		}{{"cross", 0}, {"block2", 4}} {
			tk, err := probe.OpenTokens(filepath.Join(probe.TokensDir(out), layer.name))
			if err != nil {
				t.Fatal(err)
			}
			if err := tk.Verify(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tk.Meta.Latents, []int{0, 3, 6}) || tk.Rows() != 6 || tk.Channels() != 32 || tk.Meta.State != layer.state {
				t.Fatalf("%s: latents %v, shape %v, state %d", layer.name, tk.Meta.Latents, tk.Meta.Shape, tk.Meta.State)
			}
			row := make([]float32, 3*32)
			for i := 0; i < 6; i++ {
				res, err := loadItem(m, src.Item(i), probeDefaultOptions())
				if err != nil {
					t.Fatal(err)
				}
				o, err := m.Forward(res.Pixels, 1, res.H, res.W, core.Trace{HiddenStates: true})
				if err != nil {
					t.Fatal(err)
				}
				tk.Row(row, i)
				for k, l := range tk.Meta.Latents {
					for c := 0; c < 32; c++ {
						want := o.HiddenStates[layer.state][l*32+c]
						if dt == "float16" {
							want = probe.HalfToFloat(probe.FloatToHalf(want))
						}
						if got := row[k*32+c]; got != want {
							t.Fatalf("%s %s image %d latent %d channel %d: %v, forward %v", dt, layer.name, i, l, c, got, want)
						}
					}
				}
			}
			tk.Close()
		}
	}
}

// TestTokensReadByNumpyMemmap reads a token store with numpy.memmap from its sidecar alone and
// checks that numpy sees the same float32 values (a digest of their bytes) as OpenTokens.
func TestTokensReadByNumpyMemmap(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import numpy").Run() != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must have python3-numpy")
		}
		t.Skip("no numpy under /usr/bin/python3")
	}
	for _, base := range []string{"../../testdata/sae/demo.tokens/block2", "../../testdata/sae/synthetic.tokens/sparse"} {
		tk, err := probe.OpenTokens(base)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		row := make([]float32, tk.Latents()*tk.Channels())
		for i := 0; i < tk.Rows(); i++ {
			tk.Row(row, i)
			binary.Write(&buf, binary.LittleEndian, row)
		}
		sum := sha256.Sum256(buf.Bytes())
		tk.Close()
		script := `
import json, sys, hashlib
import numpy as np
m = json.load(open(sys.argv[1] + ".json"))
a = np.memmap(sys.argv[1] + ".bin", dtype={"float16": "<f2", "float32": "<f4"}[m["dtype"]], mode="r", shape=tuple(m["shape"]))
print(list(a.shape), hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest())
`
		out, err := exec.Command(py, "-c", script, base).CombinedOutput()
		if err != nil {
			t.Fatalf("numpy: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), hex.EncodeToString(sum[:])) {
			t.Errorf("%s: numpy read %s, Go's values hash to %x", base, out, sum)
		}
	}
}

// TestExtractTokensShards writes two shards and checks that the merged reader equals one run.
func TestExtractTokensShards(t *testing.T) {
	data := idxDataSet(t, 7)
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.parquet")
	args := []string{"extract", "--model", tinyDir, "--data", data, "--layers", "block1_mean", "--tokens", "block1", "--quiet"}
	if _, e, code := run(t, append(args, "--out", whole)...); code != 0 {
		t.Fatal(e)
	}
	parts := filepath.Join(dir, "parts.parquet")
	for _, s := range []string{"1/2", "2/2"} {
		if _, e, code := run(t, append(args, "--out", parts, "--shard", s)...); code != 0 {
			t.Fatal(e)
		}
	}
	a, err := probe.OpenTokens(filepath.Join(probe.TokensDir(whole), "block1"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := probe.OpenTokens(filepath.Join(probe.TokensDir(parts), "block1"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Paths) != 2 || !slices.Equal(a.Meta.IDs, b.Meta.IDs) || !slices.Equal(a.Meta.Indices, b.Meta.Indices) {
		t.Fatalf("merged parts: %d files, ids %v vs %v", len(b.Paths), b.Meta.IDs, a.Meta.IDs)
	}
	ra, rb := make([]float32, a.Latents()*a.Channels()), make([]float32, a.Latents()*a.Channels())
	for i := 0; i < a.Rows(); i++ {
		a.Row(ra, i)
		b.Row(rb, i)
		if !slices.Equal(ra, rb) {
			t.Fatalf("row %d differs between the parts and the whole run", i)
		}
	}
	// One part missing: refused.
	os.RemoveAll(strings.TrimSuffix(parts, ".parquet") + "-part-2-of-2.tokens")
	if _, err := probe.OpenTokens(filepath.Join(probe.TokensDir(parts), "block1")); err == nil || !strings.Contains(err.Error(), "part 2 of 2 is missing") {
		t.Errorf("a missing part: %v", err)
	}
}

// float64Codes is the encoder in float64 from the saved tensors alone: pre = W_enc(x − b_dec) +
// b_enc, the K largest (ties: lower index), values max(pre, 0).
func float64Codes(wenc, benc, bdec []float32, m, d, k int, x []float32) ([]int, []float64, []float64) {
	pre := make([]float64, m)
	for j := 0; j < m; j++ {
		s := float64(benc[j])
		for i := 0; i < d; i++ {
			s += float64(wenc[j*d+i]) * (float64(x[i]) - float64(bdec[i]))
		}
		pre[j] = s
	}
	order := make([]int, m)
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(a, b int) bool { return pre[order[a]] > pre[order[b]] })
	vals := make([]float64, k)
	for e := 0; e < k; e++ {
		vals[e] = max(pre[order[e]], 0)
	}
	return order[:k], vals, pre
}

// TestSAEEncodeMatchesFloat64 trains a small SAE, encodes with probe sae encode, and checks every
// code against the float64 encoder computed from sae.safetensors: the same indices in the same
// order (where float64 puts two entries closer than float32 can tell apart, either order is
// accepted), values within 1e-5 of the largest |pre|; and the mean of fvu_row equals the
// float64 FVU of the decoded codes over the file.
func TestSAEEncodeMatchesFloat64(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "sae")
	tokens := "../../testdata/sae/synthetic.tokens/sparse"
	if _, e, code := run(t, "sae", "train", "--tokens", tokens, "--out", out, "--dict", "64", "--k", "5", "--epochs", "2", "--batch", "128", "--quiet", "--no-splice"); code != 0 {
		t.Fatal(e)
	}
	codes := filepath.Join(dir, "codes.parquet")
	if _, e, code := run(t, "sae", "encode", "--sae", out, "--out", codes); code != 0 {
		t.Fatal(e)
	}
	if _, e, code := run(t, "sae", "encode", "--sae", out, "--out", codes); code != 1 || !strings.Contains(e, "already exists") {
		t.Errorf("existing --out: exit %d, %q", code, e)
	}
	rows, err := sae.ReadCodes(codes)
	if err != nil {
		t.Fatal(err)
	}
	f, err := weights.OpenSafetensors(filepath.Join(out, "sae.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	we, _ := f.Get("W_enc", 64, 32)
	be, _ := f.Get("b_enc", 64)
	wd, _ := f.Get("W_dec", 32, 64)
	bd, _ := f.Get("b_dec", 32)
	if we == nil || be == nil || wd == nil || bd == nil {
		t.Fatal("sae.safetensors lacks W_enc [64,32], b_enc [64], W_dec [32,64] or b_dec [32]")
	}
	tk, err := probe.OpenTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if len(rows) != tk.Rows() {
		t.Fatalf("%d codes for %d rows", len(rows), tk.Rows())
	}
	x := make([]float32, 32)
	var sse, sst, sumRow float64
	mean := make([]float64, 32)
	for i := 0; i < tk.Rows(); i++ {
		tk.Row(x, i)
		for c, v := range x {
			mean[c] += float64(v) / float64(tk.Rows())
		}
	}
	for i, r := range rows {
		tk.Row(x, i)
		if r.ID != tk.Meta.IDs[i] || r.Latent != 0 || len(r.Indices) != 5 || len(r.Values) != 5 {
			t.Fatalf("row %d: id %q latent %d, %d indices", i, r.ID, r.Latent, len(r.Indices))
		}
		idx, vals, pre := float64Codes(we.Data, be.Data, bd.Data, 64, 32, 5, x)
		scale := 0.0
		for _, p := range pre {
			scale = max(scale, math.Abs(p))
		}
		for e := 0; e < 5; e++ {
			if int(r.Indices[e]) != idx[e] && math.Abs(pre[r.Indices[e]]-pre[idx[e]]) > 1e-5*scale {
				t.Fatalf("row %d entry %d: index %d (pre %v), float64 says %d (pre %v)", i, e, r.Indices[e], pre[r.Indices[e]], idx[e], pre[idx[e]])
			}
			if math.Abs(float64(r.Values[e])-vals[e]) > 1e-5*scale {
				t.Fatalf("row %d entry %d: value %v, float64 %v", i, e, r.Values[e], vals[e])
			}
		}
		// The reconstruction from the stored code, in float64.
		var e2 float64
		for c := 0; c < 32; c++ {
			xh := float64(bd.Data[c])
			for e := 0; e < 5; e++ {
				xh += float64(r.Values[e]) * float64(wd.Data[c*64+int(r.Indices[e])])
			}
			dv := float64(x[c]) - xh
			e2 += dv * dv
			dm := float64(x[c]) - mean[c]
			sst += dm * dm
		}
		sse += e2
		sumRow += r.FVURow
	}
	if fvu := sse / sst; math.Abs(sumRow/float64(len(rows))-fvu) > 1e-6*fvu {
		t.Errorf("mean fvu_row %v, float64 fvu of the codes %v", sumRow/float64(len(rows)), fvu)
	}
}

// TestSAETrainResumeAfterKill kills a training run (SIGKILL) after a checkpoint, resumes it, and
// requires the weights of an uninterrupted run, byte for byte: shuffles, Adam's state and the
// dead-latent counters all come back.
func TestSAETrainResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	dir := t.TempDir()
	tokens := "../../testdata/sae/synthetic.tokens/sparse"
	args := []string{"sae", "train", "--tokens", tokens, "--dict", "256", "--k", "8", "--epochs", "40", "--batch", "32", "--quiet", "--no-splice", "--checkpoint-steps", "7"}
	full := filepath.Join(dir, "full")
	if _, e, code := run(t, append(args, "--out", full)...); code != 0 {
		t.Fatal(e)
	}
	out := filepath.Join(dir, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(append(args, "--out", out), "\x1f"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(out, ".sae.partial", "checkpoint.safetensors")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ckpt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(out, "sae.safetensors")); err == nil {
		t.Fatal("the run finished before it was killed; the test proves nothing")
	}
	if _, e, code := run(t, append(args, "--out", out)...); code != 1 || !strings.Contains(e, "--resume") {
		t.Errorf("rerun without --resume: exit %d, %q", code, e)
	}
	// Another run's options are refused.
	bad := slices.Clone(args)
	bad[slices.Index(bad, "--k")+1] = "9"
	if _, e, code := run(t, append(bad, "--out", out, "--resume")...); code != 1 || !strings.Contains(e, "another run") {
		t.Errorf("resume with other options: exit %d, %q", code, e)
	}
	if _, e, code := run(t, append(args, "--out", out, "--resume")...); code != 0 {
		t.Fatal(e)
	}
	a, _ := os.ReadFile(filepath.Join(full, "sae.safetensors"))
	b, _ := os.ReadFile(filepath.Join(out, "sae.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run's weights differ from the uninterrupted run's")
	}
	var ra, rb saeReport
	ja, _ := os.ReadFile(filepath.Join(full, "report.json"))
	jb, _ := os.ReadFile(filepath.Join(out, "report.json"))
	json.Unmarshal(ja, &ra)
	json.Unmarshal(jb, &rb)
	if ra.Holdout == nil || rb.Holdout == nil || *ra.Holdout != *rb.Holdout || ra.Train != rb.Train {
		t.Errorf("reports differ: %+v vs %+v", ra.Holdout, rb.Holdout)
	}
}

// TestSAESplicedTokens checks the spliced-in test's plumbing on the tiny model: an autoencoder
// that reconstructs exactly (W_dec = [I, −I], k = d) leaves every prediction as it was, and one
// whose reconstruction is the zero vector changes the model's output.
func TestSAESplicedTokens(t *testing.T) {
	data := idxDataSet(t, 12)
	dir := t.TempDir()
	out := filepath.Join(dir, "f.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "block1_mean", "--tokens", "block1", "--tokens-dtype", "float32", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	in, err := openSAEInput("", "", filepath.Join(probe.TokensDir(out), "block1"), false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	d := 32
	exact := &sae.SAE{D: d, M: 2 * d, K: d, Enc: make([]float32, 2*d*d), BEnc: make([]float32, 2*d), Dict: make([]float32, 2*d*d), BDec: make([]float32, d)}
	for i := 0; i < d; i++ {
		exact.Enc[i*d+i], exact.Enc[(d+i)*d+i] = 1, -1
		exact.Dict[i*d+i], exact.Dict[(d+i)*d+i] = 1, -1
	}
	split := sae.MakeSplit(12, 0.5, 1)
	res, _, err := splicedTest(in, exact, split, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "model_top1" || res.Rows != 6 || res.Agreement != 1 || res.Original != res.Reconstructed {
		t.Errorf("exact reconstruction: %+v", res)
	}
	zero := &sae.SAE{D: d, M: 2 * d, K: 1, Enc: make([]float32, 2*d*d), BEnc: make([]float32, 2*d), Dict: make([]float32, 2*d*d), BDec: make([]float32, d)}
	m, err := core.Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := probe.OpenSource(data)
	// The zero autoencoder's reconstruction is 0: the spliced pass equals one with the layer's
	// latents cleared, and differs from the plain pass.
	it, err := loadItem(m, src.Item(split.Holdout[0]), probeDefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := m.Forward(it.Pixels, 1, it.H, it.W, core.Trace{})
	cleared, _ := m.Forward(it.Pixels, 1, it.H, it.W, core.Trace{OnHiddenState: func(s int, h []float32) {
		if s == 2 {
			clear(h)
		}
	}})
	spliced, err := splicedForward(m, zero, it.Pixels, 1, it.H, it.W, 2, in.tokens.Meta.Latents)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(plain.Logits, cleared.Logits) {
		t.Fatal("clearing block 1 leaves the logits unchanged: the test cannot tell")
	}
	if !slices.Equal(spliced.Logits, cleared.Logits) {
		t.Errorf("spliced logits %v, want those of the cleared pass %v", spliced.Logits, cleared.Logits)
	}
	if res0, _, err := splicedTest(in, zero, split, os.Stderr); err != nil || res0.Rows != 6 {
		t.Errorf("zero reconstruction: %+v, %v", res0, err)
	}
}

func probeDefaultOptions() preprocess.Options { return preprocess.Options{MaxPixels: -1} }

// TestSAEFeatures trains on the tiny model's tokens, writes the feature views, and checks them
// against the codes of probe sae encode: each entry's frequency counts its firing codes, its top
// examples are the largest values among them in order, and each drawn entry has its montage and
// one PNG per example.
func TestSAEFeatures(t *testing.T) {
	data := idxDataSet(t, 16)
	dir := t.TempDir()
	out := filepath.Join(dir, "f.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "block1_mean", "--tokens", "block2", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	sdir := filepath.Join(dir, "sae")
	if _, e, code := run(t, "sae", "train", "--tokens", filepath.Join(probe.TokensDir(out), "block2"), "--out", sdir, "--dict", "32", "--k", "3", "--epochs", "3", "--batch", "16", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	var rep saeReport
	raw, _ := os.ReadFile(filepath.Join(sdir, "report.json"))
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Spliced == nil || rep.Spliced.Kind != "model_top1" || rep.Spliced.Rows != 2 || rep.Holdout == nil || len(rep.HoldoutIDs) != 2 {
		t.Errorf("report: spliced %+v, holdout %v, ids %v", rep.Spliced, rep.Holdout, rep.HoldoutIDs)
	}
	if _, e, code := run(t, "sae", "features", "--sae", sdir, "--top", "4", "--montages", "3"); code != 0 {
		t.Fatal(e)
	}
	if _, e, code := run(t, "sae", "features", "--sae", sdir); code != 1 || !strings.Contains(e, "already exists") {
		t.Errorf("existing output: exit %d, %q", code, e)
	}
	codesPath := filepath.Join(dir, "codes.parquet")
	if _, e, code := run(t, "sae", "encode", "--sae", sdir, "--out", codesPath); code != 0 {
		t.Fatal(e)
	}
	codes, err := sae.ReadCodes(codesPath)
	if err != nil {
		t.Fatal(err)
	}
	var ff featuresFile
	raw, _ = os.ReadFile(filepath.Join(sdir, "features", "features.json"))
	if err := json.Unmarshal(raw, &ff); err != nil {
		t.Fatal(err)
	}
	if ff.Samples != 16*8 || len(ff.Features) != 32 || !ff.Tokens || ff.Heatmaps == "" {
		t.Fatalf("features.json: %d samples, %d entries, tokens %v", ff.Samples, len(ff.Features), ff.Tokens)
	}
	type ex struct {
		v      float32
		sample int
	}
	fires := map[int][]ex{}
	for i, c := range codes {
		for e, j := range c.Indices {
			if c.Values[e] > 0 {
				fires[int(j)] = append(fires[int(j)], ex{c.Values[e], i})
			}
		}
	}
	drawn := 0
	for r, f := range ff.Features {
		if r > 0 && f.Frequency > ff.Features[r-1].Frequency {
			t.Fatal("entries are not ordered by frequency")
		}
		got := fires[f.Index]
		if want := float64(len(got)) / float64(ff.Samples); f.Frequency != want {
			t.Errorf("entry %d: frequency %v, codes say %v", f.Index, f.Frequency, want)
		}
		sort.SliceStable(got, func(a, b int) bool { return got[a].v > got[b].v })
		if len(f.Top) != min(4, len(got)) {
			t.Fatalf("entry %d: %d examples, %d firings", f.Index, len(f.Top), len(got))
		}
		for i, e := range f.Top {
			c := codes[got[i].sample]
			if e.Value != got[i].v || e.ID != c.ID || e.Latent != int(c.Latent) {
				t.Errorf("entry %d example %d: %+v, codes say %v at %s latent %d", f.Index, i, e, got[i].v, c.ID, c.Latent)
			}
		}
		if f.Montage != "" {
			drawn++
			for _, name := range append([]string{f.Montage}, f.Top[0].Image) {
				if _, err := os.Stat(filepath.Join(sdir, "features", name)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	if drawn != 3 {
		t.Errorf("%d montages, want 3", drawn)
	}
	for _, name := range []string{"frequency.png", "l0_fvu.png"} {
		if _, err := os.Stat(filepath.Join(sdir, "features", name)); err != nil {
			t.Error(err)
		}
	}
}

// TestExtractTokensResumeAfterKill kills an extraction with --tokens (SIGKILL) once token rows are
// in the journal, resumes it, and compares the token store with an uninterrupted run's.
func TestExtractTokensResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess for a few seconds")
	}
	data := idxDataSet(t, 2000)
	dir := t.TempDir()
	args := []string{"extract", "--model", tinyDir, "--data", data, "--layers", "block1_mean", "--tokens", "block1,cross",
		"--batch", "1", "--workers", "1", "--row-group-mb", "0.02", "--quiet"}
	full := filepath.Join(dir, "full.parquet")
	if _, e, code := run(t, append(args, "--out", full)...); code != 0 {
		t.Fatal(e)
	}
	out := filepath.Join(dir, "killed.parquet")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(append(args, "--out", out), "\x1f"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(probe.PartialDir(filepath.Join(probe.TokensDir(out), "block1.bin")), "rows.log")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(journal); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no token rows reached the journal")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(probe.TokensDir(out), "block1.json")); err == nil {
		t.Fatal("the run finished before it was killed; the test proves nothing")
	}
	if _, e, code := run(t, append(args, "--out", out, "--resume")...); code != 0 {
		t.Fatal(e)
	}
	for _, name := range []string{"block1", "cross"} {
		a, err := probe.OpenTokens(filepath.Join(probe.TokensDir(full), name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := probe.OpenTokens(filepath.Join(probe.TokensDir(out), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Meta.IDs, b.Meta.IDs) {
			t.Fatalf("%s: %d ids after resume, %d uninterrupted", name, len(b.Meta.IDs), len(a.Meta.IDs))
		}
		ra, rb := make([]float32, a.Latents()*a.Channels()), make([]float32, a.Latents()*a.Channels())
		for i := 0; i < a.Rows(); i++ {
			a.Row(ra, i)
			b.Row(rb, i)
			if !slices.Equal(ra, rb) {
				t.Fatalf("%s row %d differs after resume", name, i)
			}
		}
		a.Close()
		b.Close()
	}
}

// TestSAEFeaturesMarkRandomWeights saves the tiny model with random weights (noted as probe demo
// notes them) and checks that the features and their figures say so, and that the tiny model's
// own weights are not marked.
func TestSAEFeaturesMarkRandomWeights(t *testing.T) {
	m, err := core.Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Randomized(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	if err := r.Save(mdir, map[string]string{"note": "random weights, seed 3"}); err != nil {
		t.Fatal(err)
	}
	saved, err := core.Load(mdir)
	if err != nil {
		t.Fatal(err)
	}
	defer saved.Close()
	if !randomWeights(saved) || randomWeights(m) {
		t.Fatal("randomWeights does not tell the noted random model from the tiny fixture")
	}
	data := idxDataSet(t, 10)
	out := filepath.Join(dir, "f.parquet")
	for _, args := range [][]string{
		{"extract", "--model", mdir, "--data", data, "--out", out, "--layers", "block1_mean", "--tokens", "block1", "--quiet"},
		{"sae", "train", "--tokens", filepath.Join(probe.TokensDir(out), "block1"), "--out", filepath.Join(dir, "sae"), "--dict", "16", "--k", "2", "--epochs", "1", "--batch", "16", "--quiet"},
		{"sae", "features", "--sae", filepath.Join(dir, "sae"), "--montages", "1"},
	} {
		if _, e, code := run(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, e)
		}
	}
	var ff featuresFile
	raw, _ := os.ReadFile(filepath.Join(dir, "sae", "features", "features.json"))
	if err := json.Unmarshal(raw, &ff); err != nil {
		t.Fatal(err)
	}
	var rep saeReport
	raw, _ = os.ReadFile(filepath.Join(dir, "sae", "report.json"))
	json.Unmarshal(raw, &rep)
	if !ff.RandomWeights || !rep.RandomModel || !strings.Contains(rep.Spliced.Note, "random weights") {
		t.Errorf("random weights not marked: features %v, report %v, spliced note %q", ff.RandomWeights, rep.RandomModel, rep.Spliced.Note)
	}
	if title := plotTitle(&ff, "x"); !strings.Contains(title, "(random weights)") {
		t.Errorf("plot title %q", title)
	}
}
