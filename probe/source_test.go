package probe

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func touch(t *testing.T, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(root, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(s Source) []string {
	out := make([]string, s.Len())
	for i := range out {
		out[i] = s.Item(i).ID
	}
	return out
}

func TestImageFolderOrderMatchesTorchvision(t *testing.T) {
	root := t.TempDir()
	touch(t, root, "cat/0.png", "cat/z.JPG", "cat/a/1.png", "cat/a-b/2.png", "cat/a/b/3.png",
		"cat/notes.txt", "cat/.x.png", "dog/d.webp", ".hidden/h.png", "README.txt")
	src, err := OpenSource(root)
	if err != nil {
		t.Fatal(err)
	}
	// Printed by torchvision 0.14.1 (Debian python3-torchvision) on this tree:
	// find_classes, then make_dataset with IMG_EXTENSIONS. Hidden files and
	// folders count, as in torchvision (issue 19, defect 21).
	want := []string{".hidden/h.png", "cat/.x.png", "cat/0.png", "cat/z.JPG", "cat/a/1.png", "cat/a-b/2.png", "cat/a/b/3.png", "dog/d.webp"}
	if got := ids(src); !reflect.DeepEqual(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
	if got := src.Classes(); !reflect.DeepEqual(got, []string{".hidden", "cat", "dog"}) {
		t.Fatalf("classes %q", got)
	}
	it := src.Item(7)
	if it.Index != 7 || !it.HasLabel || it.Label != 2 || it.LabelName != "dog" || it.Path != filepath.Join(root, "dog", "d.webp") || it.Image != nil {
		t.Fatalf("item 7 = %+v", it)
	}
}

func TestFlatFolderAndFolderErrors(t *testing.T) {
	root := t.TempDir()
	touch(t, root, "b.png", "a.jpg", "c.txt")
	src, err := OpenSource(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(src); !reflect.DeepEqual(got, []string{"a.jpg", "b.png"}) {
		t.Fatalf("ids %q", got)
	}
	if it := src.Item(0); it.HasLabel || it.LabelName != "" || src.Classes() != nil {
		t.Fatalf("flat folder has labels: %+v %q", it, src.Classes())
	}

	mixed := t.TempDir()
	touch(t, mixed, "x.png", "cls/y.png")
	if _, err := OpenSource(mixed); err == nil || !strings.Contains(err.Error(), "mixes") {
		t.Errorf("mixed layout: %v", err)
	}
	emptyClass := t.TempDir()
	touch(t, emptyClass, "a/y.png", "b/readme.txt")
	if _, err := OpenSource(emptyClass); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("empty class folder: %v", err)
	}
	if _, err := OpenSource(t.TempDir()); err == nil {
		t.Error("empty folder accepted")
	}
	if _, err := OpenSource(filepath.Join(root, "missing")); err == nil {
		t.Error("missing path accepted")
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "m.csv")
	writeFile(t, csvPath, "img/b.png,dog,train\nimg/a.png,cat,val\n\"img/c,1.png\",,test\n/abs/d.png,dog\n")
	src, err := OpenSource(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(src); !reflect.DeepEqual(got, []string{"img/b.png", "img/a.png", "img/c,1.png", "/abs/d.png"}) {
		t.Fatalf("ids %q", got)
	}
	if got := src.Classes(); !reflect.DeepEqual(got, []string{"cat", "dog"}) {
		t.Fatalf("classes %q", got)
	}
	want := []Item{
		{Index: 0, ID: "img/b.png", Path: filepath.Join(dir, "img", "b.png"), Label: 1, HasLabel: true, LabelName: "dog", Split: "train"},
		{Index: 1, ID: "img/a.png", Path: filepath.Join(dir, "img", "a.png"), Label: 0, HasLabel: true, LabelName: "cat", Split: "val"},
		{Index: 2, ID: "img/c,1.png", Path: filepath.Join(dir, "img", "c,1.png"), Split: "test"},
		{Index: 3, ID: "/abs/d.png", Path: "/abs/d.png", Label: 1, HasLabel: true, LabelName: "dog"},
	}
	for i, w := range want {
		if got := src.Item(i); !reflect.DeepEqual(got, w) {
			t.Errorf("item %d = %+v, want %+v", i, got, w)
		}
	}

	tsvPath := filepath.Join(dir, "m.tsv")
	writeFile(t, tsvPath, "split\tpath\tlabel\textra\ntrain\tx.png\t7\tz\ntest\ty.png\t0\tz\n")
	src, err = OpenSource(tsvPath)
	if err != nil {
		t.Fatal(err)
	}
	if it := src.Item(0); it.ID != "x.png" || it.Label != 7 || !it.HasLabel || it.LabelName != "" || it.Split != "train" {
		t.Errorf("tsv item 0 = %+v", it)
	}
	if src.Classes() != nil {
		t.Errorf("numeric labels gave classes %q", src.Classes())
	}

	for name, text := range map[string]string{
		"dup.csv":    "a.png,1\nb.png,2\n./a.png,3\n",
		"wide.csv":   "a.png,1,train,extra\n",
		"empty.csv":  "",
		"nopath.csv": ",1\n",
	} {
		p := filepath.Join(dir, name)
		writeFile(t, p, text)
		if _, err := OpenSource(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
}

// idxBytes encodes an unsigned-byte IDX file.
func idxBytes(dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(data)
	return b.Bytes()
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestIDXSmall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fashion")
	os.Mkdir(dir, 0o755)
	// 3 train images of 2x3 (pixel = 10*image + position), 2 test images.
	pix := func(n int) []byte {
		b := make([]byte, n*6)
		for i := range b {
			b[i] = byte(10*(i/6) + i%6)
		}
		return b
	}
	os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte.gz"), gzipBytes(idxBytes([]uint32{3, 2, 3}, pix(3))), 0o644)
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), gzipBytes(idxBytes([]uint32{3}, []byte{9, 0, 3})), 0o644)
	os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte"), idxBytes([]uint32{2, 2, 3}, pix(2)), 0o644)
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), idxBytes([]uint32{2}, []byte{1, 2}), 0o644)

	one, err := OpenSource(filepath.Join(dir, "train-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	it := one.Item(2)
	g, ok := it.Image.(*image.Gray)
	if !ok || g.Bounds() != image.Rect(0, 0, 3, 2) {
		t.Fatalf("image %T %v", it.Image, it.Image.Bounds())
	}
	if !bytes.Equal(g.Pix, []byte{20, 21, 22, 23, 24, 25}) || g.GrayAt(2, 1).Y != 25 {
		t.Fatalf("pixels %v", g.Pix)
	}
	if it.ID != "2" || it.Label != 3 || !it.HasLabel || it.LabelName != "Dress" || it.Split != "train" || it.Path != "" {
		t.Fatalf("item %+v", it)
	}

	all, err := OpenSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !reflect.DeepEqual(got, []string{"train/0", "train/1", "train/2", "test/0", "test/1"}) {
		t.Fatalf("ids %q", got)
	}
	if it := all.Item(4); it.Label != 2 || it.Split != "test" || it.Image.(*image.Gray).Pix[0] != 10 {
		t.Fatalf("item 4 %+v", it)
	}

	bad := map[string][]byte{
		"short-images-idx3-ubyte":  idxBytes([]uint32{2, 2, 3}, pix(1)),
		"long-images-idx3-ubyte":   idxBytes([]uint32{1, 2, 3}, pix(2)),
		"float-images-idx3-ubyte":  append([]byte{0, 0, 0x0D, 3}, idxBytes([]uint32{1, 1, 1}, []byte{0})[4:]...),
		"magic-images-idx3-ubyte":  []byte("PK\x03\x04 not idx"),
		"flat-images-idx3-ubyte":   idxBytes([]uint32{6}, pix(1)),
		"count-images-idx3-ubyte":  idxBytes([]uint32{1, 2, 3}, pix(1)),
		"train-labels-idx1-ubyte2": nil,
	}
	badDir := t.TempDir()
	os.WriteFile(filepath.Join(badDir, "count-labels-idx1-ubyte"), idxBytes([]uint32{2}, []byte{0, 1}), 0o644)
	for name, b := range bad {
		if b == nil {
			continue
		}
		p := filepath.Join(badDir, name)
		os.WriteFile(p, b, 0o644)
		if _, err := OpenSource(p); err == nil || !strings.Contains(err.Error(), badDir) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
	if _, err := OpenSource(filepath.Join(dir, "t10k-labels-idx1-ubyte")); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("labels file as source: %v", err)
	}
}

// TestFashionMNIST reads Debian's dataset-fashion-mnist. Expected values were
// computed with Python's gzip and struct modules from the same files.
func TestFashionMNIST(t *testing.T) {
	dir := "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(filepath.Join(dir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Debian package dataset-fashion-mnist is not installed (%v); apt-get install dataset-fashion-mnist", err)
	}
	test, err := OpenSource(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := OpenSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 10000 || all.Len() != 70000 {
		t.Fatalf("Len: test %d, all %d; want 10000, 70000", test.Len(), all.Len())
	}
	if !reflect.DeepEqual(all.Classes(), FashionMNISTClasses) {
		t.Fatalf("classes %q", all.Classes())
	}
	checks := []struct {
		src    Source
		i      int
		id     string
		label  int64
		split  string
		sha256 string // first 16 hex digits of the 784 pixels' hash
		center uint8  // pixel (14, 14)
	}{
		{test, 0, "0", 9, "test", "ffc7351ed0f8bae5", 110},
		{test, 999, "999", 7, "test", "9df438e28fa95b15", 200},
		{all, 0, "train/0", 9, "train", "5bd44e331a6d6998", 217},
		{all, 999, "train/999", 8, "train", "851a39aac4ff3f57", 194},
		{all, 60001, "test/1", 2, "test", "25138519f4c25d3d", 234},
	}
	for _, c := range checks {
		it := c.src.Item(c.i)
		g := it.Image.(*image.Gray)
		sum := sha256.Sum256(g.Pix)
		if it.ID != c.id || it.Split != c.split || hex.EncodeToString(sum[:8]) != c.sha256 || g.GrayAt(14, 14).Y != c.center || g.Bounds().Dx() != 28 {
			t.Errorf("item %d: id %q split %q hash %x centre %d", c.i, it.ID, it.Split, sum[:8], g.GrayAt(14, 14).Y)
		}
		if it.Label != c.label || it.LabelName != FashionMNISTClasses[c.label] {
			t.Errorf("item %d: label %d %q, want %d", c.i, it.Label, it.LabelName, c.label)
		}
	}
	// Each class has exactly 6000 training and 1000 test images.
	counts := map[string]int{}
	for i := 0; i < all.Len(); i++ {
		it := all.Item(i)
		counts[it.Split+"/"+it.LabelName]++
	}
	for _, cl := range FashionMNISTClasses {
		if counts["train/"+cl] != 6000 || counts["test/"+cl] != 1000 {
			t.Errorf("class %s: %d train, %d test", cl, counts["train/"+cl], counts["test/"+cl])
		}
	}
}
