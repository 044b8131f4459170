package probe

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/internal/datasetfixture"
)

type sample = datasetfixture.Sample
type member = datasetfixture.Member

func m(ext, data string) member { return member{Ext: ext, Data: []byte(data)} }

func writeTar(t *testing.T, path string, gz bool, samples ...sample) string {
	t.Helper()
	if err := datasetfixture.WriteTar(path, samples, gz); err != nil {
		t.Fatal(err)
	}
	return path
}

// streamAll reads every item of src through Stream.
func streamAll(t *testing.T, src Source, indices []int) []Item {
	t.Helper()
	var out []Item
	for it, err := range src.Stream(indices) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
	return out
}

func all(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestExpandBraces(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"s/train-{000000..000002}.tar", []string{"s/train-000000.tar", "s/train-000001.tar", "s/train-000002.tar"}},
		{"a{8..10}.tar", []string{"a8.tar", "a9.tar", "a10.tar"}},
		{"{a,b}-{0..1}.tar", []string{"a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar"}},
		{"x{3..1}", []string{"x3", "x2", "x1"}},
		{"plain.tar", []string{"plain.tar"}},
	} {
		got, err := expandBraces(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("expandBraces(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"a{1..x}.tar", "a{1..2.tar", "a{0..99999999}.tar"} {
		if _, err := expandBraces(bad); err == nil {
			t.Errorf("expandBraces(%q): no error", bad)
		}
	}
}

// TestWDSGroupsAsWebdataset: members are grouped by key as webdataset groups them (the path up to
// the first dot of the base name, a repeated extension or a new key starting a sample), the image
// is the first of jpg jpeg png webp bmp tif tiff present, labels come from cls, else from json,
// samples without an image are counted and named, and Stream returns the image members' bytes
// in key order, gzipped shards too.
func TestWDSGroupsAsWebdataset(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "train-000000.tar"), false,
		sample{Key: "a/0001", Members: []member{m("png", "PNG-1"), m("jpg", "JPG-1"), m("cls", " 3\n")}},
		sample{Key: "a/0002", Members: []member{m("json", `{"label": 5, "caption": "x"}`), m("webp", "WEBP-2")}},
		sample{Key: "__index__", Members: []member{m("", "meta")}},
		sample{Key: "a/0003", Members: []member{m("cls", "1"), m("txt", "no image")}},
		sample{Key: "a/0004", Members: []member{m("seg.png", "not the image"), m("TIFF", "TIFF-4")}},
	)
	writeTar(t, filepath.Join(dir, "train-000001.tar"), true,
		sample{Key: "b/0005", Members: []member{m("jpeg", "JPEG-5"), m("json", `{"other": 1}`)}},
		sample{Key: "README", Members: []member{m("", "no dot")}},
	)
	pattern := filepath.Join(dir, "train-{000000..000001}.tar")
	// The second shard is gzipped under a .tar name: detected by its magic bytes.
	src, err := OpenSource(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(src), []string{"a/0001", "a/0002", "a/0004", "b/0005"}; !slices.Equal(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
	items := streamAll(t, src, all(src.Len()))
	wantData := []string{"JPG-1", "WEBP-2", "TIFF-4", "JPEG-5"}
	wantLabel := []int64{3, 5, 0, 0}
	wantHas := []bool{true, true, false, false}
	for i, it := range items {
		if string(it.Data) != wantData[i] || it.Label != wantLabel[i] || it.HasLabel != wantHas[i] || it.Index != i || it.Err != nil {
			t.Errorf("item %d: %+v; want data %q label %d (%v)", i, it, wantData[i], wantLabel[i], wantHas[i])
		}
		if l := src.Item(i); l.Data != nil || l.ID != it.ID {
			t.Errorf("Item(%d) = %+v: the listing carries no data and the same id", i, l)
		}
	}
	n, why := SkippedFiles(src)
	if n != 3 || !strings.Contains(why, "train-000000.tar:a/0003") || !strings.Contains(why, "README") || !strings.Contains(why, "1 of them with a cls") {
		t.Errorf("skipped %d: %s", n, why)
	}
	if s := LabelScheme(src); !strings.Contains(s, "cls and json") {
		t.Errorf("label scheme %q", s)
	}
	// A subset, across both shards, and an early stop.
	sub := streamAll(t, src, []int{1, 3})
	if len(sub) != 2 || string(sub[0].Data) != "WEBP-2" || string(sub[1].Data) != "JPEG-5" {
		t.Errorf("subset: %+v", sub)
	}
	for range src.Stream(all(4)) {
		break
	}
	// The folder of shards and the single shard are sources too.
	if folder, err := OpenSource(dir); err != nil || folder.Len() != 4 || Digest(folder) != Digest(src) {
		t.Errorf("folder of shards: %v (%d items)", err, folder.Len())
	}
	if one, err := OpenSource(filepath.Join(dir, "train-000001.tar")); err != nil || one.Len() != 1 {
		t.Errorf("one shard: %v", err)
	}
}

// TestWDSJSONNames: string labels in json are class names numbered in sorted order; a mix of
// names and integers is refused.
func TestWDSJSONNames(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "s.tar"), false,
		sample{Key: "1", Members: []member{m("jpg", "x"), m("json", `{"cls_name": "wasp"}`)}},
		sample{Key: "2", Members: []member{m("jpg", "y"), m("json", `{"cls_name": "ant"}`)}},
	)
	src, err := OpenSourceWith(filepath.Join(dir, "s.tar"), SourceOptions{LabelField: "cls_name"})
	if err != nil {
		t.Fatal(err)
	}
	if it := src.Item(0); it.Label != 1 || it.LabelName != "wasp" || !slices.Equal(src.Classes(), []string{"ant", "wasp"}) {
		t.Errorf("item 0 %+v, classes %q", it, src.Classes())
	}
	writeTar(t, filepath.Join(dir, "mix.tar"), false,
		sample{Key: "1", Members: []member{m("jpg", "x"), m("cls", "2")}},
		sample{Key: "2", Members: []member{m("jpg", "y"), m("json", `{"label": "ant"}`)}},
	)
	if _, err := OpenSource(filepath.Join(dir, "mix.tar")); err == nil || !strings.Contains(err.Error(), "mix") {
		t.Errorf("mixed labels: %v", err)
	}
}

// TestWDSRepeatedKeys: keys that repeat across shards get the shard's base name as a prefix, on
// every item; a key twice in one shard is refused.
func TestWDSRepeatedKeys(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "p-0.tar"), false, sample{Key: "000", Members: []member{m("jpg", "a")}}, sample{Key: "001", Members: []member{m("jpg", "b")}})
	writeTar(t, filepath.Join(dir, "p-1.tar.gz"), true, sample{Key: "000", Members: []member{m("jpg", "c")}})
	src, err := OpenSource(filepath.Join(dir, "p-{0..1}.tar*"))
	if err == nil {
		t.Fatalf("a brace pattern that names no file opened: %v", ids(src))
	}
	src, err = OpenSource(filepath.Join(dir, "p-*"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(src), []string{"p-0/000", "p-0/001", "p-1/000"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	writeTar(t, filepath.Join(dir, "dup.tar"), false, sample{Key: "k", Members: []member{m("jpg", "a")}}, sample{Key: "j", Members: []member{m("jpg", "b")}}, sample{Key: "k", Members: []member{m("png", "c")}})
	if _, err := OpenSource(filepath.Join(dir, "dup.tar")); err == nil || !strings.Contains(err.Error(), `"k" occurs twice`) {
		t.Errorf("duplicate key: %v", err)
	}
}

func TestWDSBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeTar(t, filepath.Join(dir, "good.tar"), false,
		sample{Key: "0", Members: []member{m("jpg", strings.Repeat("j", 3000)), m("cls", "1")}},
		sample{Key: "1", Members: []member{m("png", strings.Repeat("p", 700)), m("cls", "2")}},
	)
	data, _ := os.ReadFile(good)

	// A brace pattern with a missing shard names the first missing one.
	writeTar(t, filepath.Join(dir, "s-000.tar"), false, sample{Key: "a", Members: []member{m("jpg", "x")}})
	writeTar(t, filepath.Join(dir, "s-002.tar"), false, sample{Key: "b", Members: []member{m("jpg", "x")}})
	if _, err := OpenSource(filepath.Join(dir, "s-{000..003}.tar")); err == nil || !strings.Contains(err.Error(), "s-001.tar is missing") {
		t.Errorf("missing shard: %v", err)
	}

	// A member over the image limit is an item with Err, its data never read; the stream goes on.
	src, err := OpenSourceWith(good, SourceOptions{MaxImageBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	items := streamAll(t, src, all(2))
	if items[0].Err == nil || items[0].Data != nil || !strings.Contains(items[0].Err.Error(), "over the image limit") || items[1].Err != nil || len(items[1].Data) != 700 {
		t.Errorf("size limit: %+v", items)
	}

	// A non-integer cls is a one-line error naming the member.
	writeTar(t, filepath.Join(dir, "cls.tar"), false, sample{Key: "z", Members: []member{m("jpg", "x"), m("cls", "cat")}})
	if _, err := OpenSource(filepath.Join(dir, "cls.tar")); err == nil || !strings.Contains(err.Error(), "z.cls") {
		t.Errorf("bad cls: %v", err)
	}
	// Only samples without images: an error that says so.
	writeTar(t, filepath.Join(dir, "noimg.tar"), false, sample{Key: "z", Members: []member{m("cls", "1")}})
	if _, err := OpenSource(filepath.Join(dir, "noimg.tar")); err == nil || !strings.Contains(err.Error(), "no samples with an image") || !strings.Contains(err.Error(), "noimg.tar:z") {
		t.Errorf("no images: %v", err)
	}

	// Fuzz-ish: the shard cut at every length, plain and gzipped. Opening either fails with an
	// error naming the file, or (a cut inside the end-of-archive blocks' padding the tar reader
	// does not need) lists both samples and streams them whole: never a panic, never a sample
	// silently lost.
	var gzBuf bytes.Buffer
	gzPath := filepath.Join(dir, "g.tar.gz")
	if err := datasetfixture.WriteTar(gzPath, []sample{{Key: "0", Members: []member{m("jpg", strings.Repeat("j", 3000))}}, {Key: "1", Members: []member{m("png", "p")}}}, true); err != nil {
		t.Fatal(err)
	}
	gzData, _ := os.ReadFile(gzPath)
	gzBuf.Write(gzData)
	for _, c := range []struct {
		name string
		data []byte
		step int
	}{{"cut.tar", data, 97}, {"cut.tar.gz", gzBuf.Bytes(), 7}} {
		p := filepath.Join(dir, c.name)
		for n := 0; n < len(c.data); n += c.step {
			os.WriteFile(p, c.data[:n], 0o644)
			src, err := OpenSource(p)
			if err != nil {
				if !strings.Contains(err.Error(), c.name) {
					t.Errorf("cut at %d: error does not name the file: %v", n, err)
				}
				continue
			}
			if src.Len() != 2 {
				t.Errorf("%s cut at %d of %d: opened with %d samples", c.name, n, len(c.data), src.Len())
				continue
			}
			for it, err := range src.Stream(all(2)) {
				if err == nil && it.Data == nil {
					t.Errorf("%s cut at %d: item %d without data or error", c.name, n, it.Index)
				}
			}
		}
	}
	// A tar cut mid-member says so.
	os.WriteFile(filepath.Join(dir, "mid.tar"), data[:1500], 0o644)
	if _, err := OpenSource(filepath.Join(dir, "mid.tar")); err == nil || !strings.Contains(err.Error(), "truncated tar") {
		t.Errorf("cut mid-member: %v", err)
	}
	// A tar cut at a member boundary reads as complete to archive/tar: the missing end-of-archive
	// blocks say it is not.
	os.WriteFile(filepath.Join(dir, "edge.tar"), data[:len(data)-1024], 0o644)
	if _, err := OpenSource(filepath.Join(dir, "edge.tar")); err == nil || !strings.Contains(err.Error(), "no end-of-archive blocks") {
		t.Errorf("cut at a member boundary: %v", err)
	}
	// A shard replaced after listing: Stream reports it instead of returning other images.
	p := filepath.Join(dir, "change.tar")
	writeTar(t, p, false, sample{Key: "0", Members: []member{m("jpg", "a")}}, sample{Key: "1", Members: []member{m("jpg", "b")}})
	src, err = OpenSource(p)
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, p, false, sample{Key: "0", Members: []member{m("jpg", "a")}}, sample{Key: "9", Members: []member{m("jpg", "b")}})
	var last error
	for _, err := range src.Stream(all(2)) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), "changed since it was listed") {
		t.Errorf("changed shard: %v", last)
	}
}

// TestWDSShardsWholeTars: with at least N tars each shard gets whole tars (tar f to shard
// f mod N + 1); with fewer, items by index. Either way the shards partition the items.
func TestWDSShardsWholeTars(t *testing.T) {
	dir := t.TempDir()
	for f := range 3 {
		var ss []sample
		for k := range f + 2 {
			ss = append(ss, sample{Key: fmt.Sprintf("%d-%d", f, k), Members: []member{m("jpg", "x")}})
		}
		writeTar(t, filepath.Join(dir, fmt.Sprintf("w-%d.tar", f)), false, ss...)
	}
	src, err := OpenSource(filepath.Join(dir, "w-{0..2}.tar"))
	if err != nil {
		t.Fatal(err)
	}
	// Tars hold items 0-1, 2-4, 5-8.
	if got := (Shard{1, 2}).Members(src); !slices.Equal(got, []int{0, 1, 5, 6, 7, 8}) {
		t.Errorf("shard 1/2: %v", got)
	}
	if got := (Shard{2, 2}).Members(src); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("shard 2/2: %v", got)
	}
	if got := (Shard{2, 4}).Members(src); !slices.Equal(got, []int{1, 5}) {
		t.Errorf("shard 2/4 (fewer tars than shards: by index): %v", got)
	}
	// Each worker reads only its own tars: with tar 1 gone after the listing, shard 1/2 (tars 0
	// and 2) streams whole, and shard 2/2 reports the missing file.
	os.Remove(filepath.Join(dir, "w-1.tar"))
	if got := streamAll(t, src, (Shard{1, 2}).Members(src)); len(got) != 6 || got[5].ID != "2-3" {
		t.Errorf("shard 1/2 without tar 1: %d items", len(got))
	}
	var last error
	for _, err := range src.Stream((Shard{2, 2}).Members(src)) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), "w-1.tar") {
		t.Errorf("shard 2/2 without its tar: %v", last)
	}
	if !strings.Contains((Shard{1, 2}).Plan(src), "whole files") || !strings.Contains((Shard{2, 4}).Plan(src), "mod 4") {
		t.Errorf("plans %q, %q", (Shard{1, 2}).Plan(src), (Shard{2, 4}).Plan(src))
	}
}

// TestWDSDigest: the digest changes when a member's size or name changes, and not otherwise.
func TestWDSDigest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.tar")
	writeTar(t, p, false, sample{Key: "0", Members: []member{m("jpg", "abc"), m("txt", "t")}})
	a, _ := OpenSource(p)
	writeTar(t, p, false, sample{Key: "0", Members: []member{m("jpg", "xyz"), m("txt", "t")}})
	b, _ := OpenSource(p)
	writeTar(t, p, false, sample{Key: "0", Members: []member{m("jpg", "abcd"), m("txt", "t")}})
	c, _ := OpenSource(p)
	if Digest(a) != Digest(b) || Digest(a) == Digest(c) {
		t.Errorf("digests %s %s %s: same sizes must agree, a new size must differ", Digest(a), Digest(b), Digest(c))
	}
	var ip itemPanic
	func() {
		defer func() { r := recover(); ip, _ = r.(itemPanic) }()
		for range a.Stream([]int{5}) {
		}
	}()
	if ip.Index != 5 {
		t.Errorf("an index out of range must panic with itemPanic, got %v", ip)
	}
}

// FuzzOpenWebDataset: any bytes as a tar shard (plain or gzipped) open with an error or list
// samples that stream, each with its data or a reason; never a panic. .ci/run fuzzes it briefly.
func FuzzOpenWebDataset(f *testing.F) {
	dir := f.TempDir()
	for i, gz := range []bool{false, true} {
		p := filepath.Join(dir, fmt.Sprintf("seed%d.tar", i))
		err := datasetfixture.WriteTar(p, []sample{
			{Key: "a/0", Members: []member{m("jpg", "JPEG"), m("cls", "1")}},
			{Key: "a/1", Members: []member{m("json", `{"label": 2}`), m("png", "PNG")}},
			{Key: "a/2", Members: []member{m("cls", "3")}},
		}, gz)
		if err != nil {
			f.Fatal(err)
		}
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := OpenSourceWith(p, SourceOptions{MaxImageBytes: 1 << 16})
		if err != nil {
			return
		}
		for it, err := range src.Stream(all(src.Len())) {
			if err == nil && it.Data == nil && it.Err == nil {
				t.Fatalf("item %d: neither data nor a reason", it.Index)
			}
		}
	})
}
