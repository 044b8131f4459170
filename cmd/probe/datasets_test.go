package main

// Tests of issue 28: WebDataset shards and Hugging Face Parquet as --data, against the same
// images as an ImageFolder; --shard and --resume on both; bounded memory on 10,000 images.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/internal/datasetfixture"
	"github.com/perceiverkit/perceiver/probe"
)

// folderImages reads an ImageFolder's files in its source order: (id, class, bytes).
type folderImage struct {
	id, class string
	label     int64
	data      []byte
}

func folderImages(t testing.TB, dir string) []folderImage {
	t.Helper()
	src, err := probe.OpenSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []folderImage
	for i := range src.Len() {
		it := src.Item(i)
		data, err := os.ReadFile(it.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, folderImage{it.ID, it.LabelName, it.Label, data})
	}
	return out
}

// wdsFrom writes images as WebDataset shards dir/train-00000K.tar, as img2dataset does (key =
// the id without its extension, the image under its own extension, then the label as cls when
// cls is set, and a json member with the class name as "caption" and the integer as "label"),
// split evenly over shards.
func wdsFrom(t testing.TB, imgs []folderImage, dir string, shards int, gz, cls bool) {
	t.Helper()
	per := (len(imgs) + shards - 1) / shards
	for s := range shards {
		var samples []datasetfixture.Sample
		for _, im := range imgs[min(s*per, len(imgs)):min((s+1)*per, len(imgs))] {
			ext := strings.TrimPrefix(path.Ext(im.id), ".")
			members := []datasetfixture.Member{{Ext: ext, Data: im.data}}
			if cls {
				members = append(members, datasetfixture.Member{Ext: "cls", Data: []byte(fmt.Sprint(im.label))})
			}
			members = append(members, datasetfixture.Member{Ext: "json", Data: []byte(fmt.Sprintf(`{"caption": %q, "label": %d}`, im.class, im.label))})
			samples = append(samples, datasetfixture.Sample{Key: strings.TrimSuffix(im.id, path.Ext(im.id)), Members: members})
		}
		name := fmt.Sprintf("train-%06d.tar", s)
		if gz {
			name += ".gz"
		}
		if err := datasetfixture.WriteTar(filepath.Join(dir, name), samples, gz); err != nil {
			t.Fatal(err)
		}
	}
}

// hfFrom writes images as a datasets Parquet file (image.path = the id, ClassLabel names).
func hfFrom(t testing.TB, imgs []folderImage, file string, classes []string, rowGroup int) {
	t.Helper()
	var rows []datasetfixture.Row
	for _, im := range imgs {
		rows = append(rows, datasetfixture.Row{Bytes: im.data, Path: im.id, Label: im.label})
	}
	if err := datasetfixture.WriteHFParquet(file, rows, classes, rowGroup, false); err != nil {
		t.Fatal(err)
	}
}

// sameByFileName compares two extractions row by row, matching ids by file name without the
// extension (a WebDataset key has none): the same rows, features bit for bit, labels, and label
// names when names is set.
func sameByFileName(t *testing.T, got, want *probe.Table, names bool) {
	t.Helper()
	stem := func(id string) string { return strings.TrimSuffix(id, path.Ext(id)) }
	if got.Len() != want.Len() {
		t.Fatalf("%d rows, want %d (%q vs %q)", got.Len(), want.Len(), got.IDs, want.IDs)
	}
	for i := range want.IDs {
		j := slices.IndexFunc(got.IDs, func(id string) bool { return stem(id) == stem(want.IDs[i]) })
		if j < 0 {
			t.Fatalf("no row for %s in %q", want.IDs[i], got.IDs)
		}
		if got.Labels[j] != want.Labels[i] || got.HasLabel[j] != want.HasLabel[i] || (names && got.LabelNames[j] != want.LabelNames[i]) {
			t.Errorf("%s: label %d %q, want %d %q", want.IDs[i], got.Labels[j], got.LabelNames[j], want.Labels[i], want.LabelNames[i])
		}
		for _, c := range want.Columns {
			a, da, _ := got.Vector(c.Name)
			b, db, _ := want.Vector(c.Name)
			if !slices.Equal(a[j*da:(j+1)*da], b[i*db:(i+1)*db]) {
				t.Errorf("%s: column %s differs", want.IDs[i], c.Name)
			}
		}
	}
}

// TestExtractWDSAndParquetEqualImageFolder: the fixture photos (and one broken file) as an
// ImageFolder, as two WebDataset shards named by a brace pattern, and as a Hugging Face Parquet
// file give the same features for every image (bit for bit: the same bytes reach the same
// decoder) and the same labels; the broken file is skipped and counted by all three.
func TestExtractWDSAndParquetEqualImageFolder(t *testing.T) {
	folder := imageFolder(t)
	imgs := folderImages(t, folder)
	dir := t.TempDir()
	shards := filepath.Join(dir, "shards")
	os.Mkdir(shards, 0o755)
	wdsFrom(t, imgs, shards, 2, false, true)
	pq := filepath.Join(dir, "train-00000-of-00001.parquet")
	hfFrom(t, imgs, pq, []string{"cat", "cup", "man"}, 2)

	extract := func(data string, extra ...string) (*probe.Table, string) {
		out := filepath.Join(t.TempDir(), "f.parquet")
		stdout, e, code := run(t, append([]string{"extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "all", "--batch", "2", "--quiet"}, extra...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", data, code, e)
		}
		if !strings.Contains(stdout, "4 new rows") || !strings.Contains(stdout, "1 skipped") || !strings.Contains(e, "broken") {
			t.Errorf("%s: summary %q, stderr %q", data, stdout, e)
		}
		tab, _ := loadTable(t, out)
		return tab, stdout
	}
	want, _ := extract(folder)
	wds, stdout := extract(filepath.Join(shards, "train-{000000..000001}.tar"))
	if !strings.Contains(stdout, "labels: integer labels from cls") {
		t.Errorf("wds label scheme: %s", stdout)
	}
	sameByFileName(t, wds, want, false) // cls holds integers only
	if wds.IDs[0] != "cat/broken" && wds.IDs[0] != "cat/chelsea" {
		t.Errorf("wds ids %q: the key, in shard order", wds.IDs)
	}
	// Without cls, labels from a json field holding the class names: numbered in sorted order,
	// as the folder's classes are, names included.
	named := filepath.Join(dir, "named")
	os.Mkdir(named, 0o755)
	wdsFrom(t, imgs, named, 2, false, false)
	wds, stdout = extract(filepath.Join(named, "train-{000000..000001}.tar"), "--label-field", "caption")
	if !strings.Contains(stdout, "label names (json \"caption\")") {
		t.Errorf("wds label scheme: %s", stdout)
	}
	sameByFileName(t, wds, want, true)
	hf, stdout := extract(pq)
	if !strings.Contains(stdout, "ClassLabel") {
		t.Errorf("hf label scheme: %s", stdout)
	}
	sameByFileName(t, hf, want, true)
	if !slices.Equal(hf.IDs, want.IDs) {
		t.Errorf("hf ids %q, want the image paths %q", hf.IDs, want.IDs)
	}
	// gzipped shards, as a folder.
	gz := filepath.Join(dir, "gz")
	os.Mkdir(gz, 0o755)
	wdsFrom(t, imgs, gz, 2, true, true)
	got, _ := extract(gz)
	sameByFileName(t, got, want, false)
}

// TestExtractWDSAndParquetShards: --shard over a WebDataset with at least N tars gives each
// worker whole tars; with fewer, items by index; over Parquet, items by index. Each way the parts
// read back as the unsharded run, row for row.
func TestExtractWDSAndParquetShards(t *testing.T) {
	data := idxDataSet(t, 60)
	imgs := idxImages(t, data, 60, 1)
	dir := t.TempDir()
	shards := filepath.Join(dir, "shards")
	os.Mkdir(shards, 0o755)
	wdsFrom(t, imgs, shards, 3, false, true)
	pq := filepath.Join(dir, "d.parquet")
	hfFrom(t, imgs, pq, nil, 16)
	for _, c := range []struct {
		data, plan string
		n          int
	}{
		{filepath.Join(shards, "train-{000000..000002}.tar"), "whole files", 3},
		{shards, "whole files", 2},
		{shards, "items i with i mod 4", 4},
		{pq, "items i with i mod 2", 2},
	} {
		full := filepath.Join(t.TempDir(), "full.parquet")
		args := []string{"extract", "--model", tinyDir, "--data", c.data, "--layers", "decoder", "--quiet"}
		if _, e, code := run(t, append(args, "--out", full)...); code != 0 {
			t.Fatal(e)
		}
		parts := t.TempDir()
		for k := 1; k <= c.n; k++ {
			_, e, code := run(t, append(args, "--out", filepath.Join(parts, "f.parquet"), "--shard", fmt.Sprintf("%d/%d", k, c.n))...)
			if code != 0 {
				t.Fatal(e)
			}
			if !strings.Contains(e, c.plan) {
				t.Errorf("%s shard %d/%d: stderr %q, want the plan %q", c.data, k, c.n, e, c.plan)
			}
		}
		a, _ := loadTable(t, parts)
		b, _ := loadTable(t, full)
		sameTables(t, a, b)
	}
}

// idxImages encodes the first n images of an IDX data set as PNG files (scaled up scale times,
// nearest neighbour), ids train/K.png, labels kept.
func idxImages(t testing.TB, data string, n, scale int) []folderImage {
	t.Helper()
	src, err := probe.OpenSource(data)
	if err != nil {
		t.Fatal(err)
	}
	enc := png.Encoder{CompressionLevel: png.NoCompression} // large files: the bounded-memory test needs bulk
	var out []folderImage
	for i := range min(n, src.Len()) {
		it := src.Item(i)
		g := it.Image.(*image.Gray)
		w, h := g.Rect.Dx()*scale, g.Rect.Dy()*scale
		big := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				big.Pix[y*w+x] = g.Pix[(y/scale)*g.Stride+x/scale]
			}
		}
		var buf bytes.Buffer
		if err := enc.Encode(&buf, big); err != nil {
			t.Fatal(err)
		}
		out = append(out, folderImage{id: fmt.Sprintf("train/%05d.png", i), label: it.Label, data: buf.Bytes()})
	}
	return out
}

// TestExtractWDSAndParquetResume kills an extraction of each format once checkpoints are on disk,
// resumes it, and compares with an uninterrupted run row for row; a shard changed since then is
// refused as a changed source.
func TestExtractWDSAndParquetResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses for a few seconds")
	}
	data := idxDataSet(t, 1500)
	imgs := idxImages(t, data, 1500, 1)
	dir := t.TempDir()
	shards := filepath.Join(dir, "shards")
	os.Mkdir(shards, 0o755)
	wdsFrom(t, imgs, shards, 3, false, true)
	pq := filepath.Join(dir, "d.parquet")
	hfFrom(t, imgs, pq, nil, 100)
	for _, src := range []string{filepath.Join(shards, "train-{000000..000002}.tar"), pq} {
		args := []string{"extract", "--model", tinyDir, "--data", src, "--layers", "all", "--batch", "1", "--workers", "1", "--row-group-mb", "0.02", "--quiet"}
		full := filepath.Join(t.TempDir(), "full.parquet")
		if _, e, code := run(t, append(args, "--out", full)...); code != 0 {
			t.Fatal(e)
		}
		out := filepath.Join(t.TempDir(), "killed.parquet")
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(append(args, "--out", out), "\x1f"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		partial := probe.PartialDir(out)
		deadline := time.Now().Add(120 * time.Second)
		for {
			chunks, _ := filepath.Glob(filepath.Join(partial, "chunk-*.parquet"))
			if len(chunks) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("no checkpoint appeared")
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: the run finished before it was killed; the test proves nothing", src)
		}
		stdout, e, code := run(t, append(args, "--out", out, "--resume")...)
		if code != 0 {
			t.Fatal(e)
		}
		if strings.Contains(stdout, " 0 already present") {
			t.Errorf("%s: resume recomputed everything: %s", src, stdout)
		}
		a, _ := loadTable(t, out)
		b, _ := loadTable(t, full)
		sameTables(t, a, b)
	}
	// A member of another size in a shard: the source digest changes and --resume refuses.
	out := filepath.Join(t.TempDir(), "f.parquet")
	src := filepath.Join(shards, "train-{000000..000002}.tar")
	args := []string{"extract", "--model", tinyDir, "--data", src, "--layers", "decoder", "--quiet", "--out", out}
	if _, e, code := run(t, args...); code != 0 {
		t.Fatal(e)
	}
	imgs[1].data = append(imgs[1].data, 0)
	wdsFrom(t, imgs, shards, 3, false, true)
	if _, e, code := run(t, append(args, "--resume")...); code != 1 || !strings.Contains(e, "source changed") {
		t.Errorf("changed shard: exit %d, %q", code, e)
	}
}

// TestExtractWDS10kBoundedMemory streams a 10,000-image WebDataset (Fashion-MNIST images scaled
// to 168×168, stored as uncompressed PNG in 10 shards: 270 MiB) through extract in a child process and reports its
// peak RSS. The bound: a run over 10,000 images peaks within 64 MiB of a run over the first
// 1,000 of them (the data is 10x larger, so anything held per image would show), and under
// 256 MiB in all, less than the data.
func TestExtractWDS10kBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB and extracts 10,000 images")
	}
	fashion := "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz" // Debian's dataset-fashion-mnist, installed by .ci/run
	if _, err := os.Stat(fashion); err != nil {
		fashion = idxDataSet(t, 10000) // random digits: the same sizes
	}
	imgs := idxImages(t, fashion, 10000, 6)
	if len(imgs) != 10000 {
		t.Fatalf("%d images", len(imgs))
	}
	dir := t.TempDir()
	wdsFrom(t, imgs, dir, 10, false, true)
	total := int64(0)
	for _, im := range imgs {
		total += int64(len(im.data))
	}
	peak := func(pattern string) (int64, string) {
		out := filepath.Join(t.TempDir(), "f.parquet")
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join([]string{"extract", "--model", tinyDir, "--data", pattern, "--out", out, "--layers", "decoder", "--batch", "16", "--row-group-mb", "8", "--quiet"}, "\x1f"))
		cmd.Env = append(cmd.Env, "PROBE_HELPER_HWM=1")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no VmHWM in %q", b)
		}
		kb, _ := strconv.ParseInt(m[1], 10, 64)
		return kb << 10, string(b)
	}
	small, _ := peak(filepath.Join(dir, "train-000000.tar"))
	large, summary := peak(filepath.Join(dir, "train-{000000..000009}.tar"))
	t.Logf("peak RSS: 1,000 images %.0f MiB, 10,000 images %.0f MiB (%.0f MiB of image data); %s", float64(small)/(1<<20), float64(large)/(1<<20), float64(total)/(1<<20), strings.TrimSpace(summary))
	if large > small+64<<20 || large > 256<<20 {
		t.Errorf("peak RSS %d MiB over 10,000 images against %d MiB over 1,000: memory grows with the data", large>>20, small>>20)
	}
}

// TestFaithfulnessAndAblateTakeContainers: the other commands that take --data read WebDataset
// shards and Parquet too, with the results of the same images as an ImageFolder: faithfulness's
// per-method curves (deterministic methods) and ablate's per-latent Δ with means over --data.
func TestFaithfulnessAndAblateTakeContainers(t *testing.T) {
	folder := imageFolder(t)
	imgs := folderImages(t, folder)
	dir := t.TempDir()
	wdsFrom(t, imgs, dir, 2, false, true)
	pq := filepath.Join(t.TempDir(), "d.parquet")
	hfFrom(t, imgs, pq, []string{"cat", "cup", "man"}, 2)
	sources := []string{folder, filepath.Join(dir, "train-{000000..000001}.tar"), pq}

	var want map[string]any
	for _, data := range sources {
		out := filepath.Join(t.TempDir(), "f")
		_, e, code := run(t, "faithfulness", "--model", tinyDir, "--data", data, "--methods", "mean,occlusion",
			"--window", "4", "--stride", "4", "--steps", "5", "--quiet", "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", data, code, e)
		}
		rep := readReport(t, out)
		if rep["images"] != 4.0 || rep["skipped"] != 1.0 {
			t.Errorf("%s: images %v skipped %v, want 4 and 1", data, rep["images"], rep["skipped"])
		}
		got := rep["methods"].(map[string]any)
		if want == nil {
			want = got
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: faithfulness curves differ from the folder's", data)
		}
	}
	var wantLatents []any
	for _, data := range sources {
		out := t.TempDir()
		_, e, code := run(t, "ablate", "--model", tinyDir, "--image", "../../testdata/tiny/chelsea.png", "--out", out, "--batch", "3", "--quiet", "--mode", "mean", "--data", data)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", data, code, e)
		}
		raw, _ := os.ReadFile(filepath.Join(out, "ablation.json"))
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		latents := doc["latents"].([]any)
		if wantLatents == nil {
			wantLatents = latents
		} else if !reflect.DeepEqual(latents, wantLatents) {
			t.Errorf("%s: ablation Δ differ from the folder's", data)
		}
	}
}
