package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/parquet/file"

	"github.com/perceiverkit/perceiver/internal/datasetfixture"
)

func hfRows(n int) []datasetfixture.Row {
	var rows []datasetfixture.Row
	for i := range n {
		rows = append(rows, datasetfixture.Row{Bytes: []byte(fmt.Sprintf("image-%d", i)), Path: fmt.Sprintf("img%02d.png", i), Label: int64(i % 3)})
	}
	return rows
}

// TestHFParquetSource: ids from image.path, labels with their ClassLabel names from the
// "huggingface" metadata, the image bytes streamed row group by row group (the fixture has row
// groups of 2 rows; a subset spanning groups and files comes back in order).
func TestHFParquetSource(t *testing.T) {
	dir := t.TempDir()
	classes := []string{"cat", "cup", "man"}
	rows := hfRows(7)
	rows[4].Label = -1 // null
	a, b := filepath.Join(dir, "train-00000-of-00002.parquet"), filepath.Join(dir, "train-00001-of-00002.parquet")
	if err := datasetfixture.WriteHFParquet(a, rows[:5], classes, 2, false); err != nil {
		t.Fatal(err)
	}
	if err := datasetfixture.WriteHFParquet(b, rows[5:], classes, 2, false); err != nil {
		t.Fatal(err)
	}
	f, err := file.OpenParquetFile(a, false)
	if err != nil {
		t.Fatal(err)
	}
	if g := f.NumRowGroups(); g != 3 {
		t.Errorf("fixture has %d row groups, want 3", g)
	}
	f.Close()
	for _, path := range []string{dir, filepath.Join(dir, "train-*.parquet")} {
		src, err := OpenSource(path)
		if err != nil {
			t.Fatal(err)
		}
		if src.Len() != 7 || src.Item(6).ID != "img06.png" || !slices.Equal(src.Classes(), classes) {
			t.Fatalf("%s: %d items, item 6 %+v, classes %q", path, src.Len(), src.Item(6), src.Classes())
		}
		if it := src.Item(5); it.Label != 2 || it.LabelName != "man" || !it.HasLabel {
			t.Errorf("item 5: %+v", it)
		}
		if it := src.Item(4); it.HasLabel {
			t.Errorf("item 4 has a null label: %+v", it)
		}
		got := streamAll(t, src, []int{0, 3, 4, 6})
		for k, i := range []int{0, 3, 4, 6} {
			if got[k].Index != i || string(got[k].Data) != fmt.Sprintf("image-%d", i) || got[k].ID != fmt.Sprintf("img%02d.png", i) {
				t.Errorf("streamed %d: %+v", i, got[k])
			}
		}
		if s := LabelScheme(src); !strings.Contains(s, "ClassLabel, 3 names") || !strings.Contains(s, "ids: image.path") {
			t.Errorf("scheme %q", s)
		}
	}
}

// TestHFParquetIDs: a binary image column has no path (ids FILE:ROW); repeated paths fall back to
// FILE:ROW and say why; --id-column names the ids and must be unique.
func TestHFParquetIDs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bin.parquet")
	if err := datasetfixture.WriteHFParquet(p, hfRows(3), []string{"a", "b", "c"}, 10, true); err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(src); !slices.Equal(got, []string{"bin.parquet:0", "bin.parquet:1", "bin.parquet:2"}) {
		t.Errorf("ids %q", got)
	}
	if it := streamAll(t, src, []int{2}); string(it[0].Data) != "image-2" {
		t.Errorf("binary column: %+v", it)
	}
	rows := hfRows(4) // labels 0 1 2 0
	rows[2].Path = rows[0].Path
	p = filepath.Join(dir, "rep.parquet")
	datasetfixture.WriteHFParquet(p, rows, nil, 10, false)
	src, err = OpenSource(p)
	if err != nil {
		t.Fatal(err)
	}
	if src.Item(2).ID != "rep.parquet:2" || !strings.Contains(LabelScheme(src), "repeats") {
		t.Errorf("repeated paths: %q, %s", ids(src), LabelScheme(src))
	}
	if _, err := OpenSourceWith(p, SourceOptions{IDColumn: "label"}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("--id-column with repeats: %v", err)
	}
	p = filepath.Join(dir, "ok.parquet")
	datasetfixture.WriteHFParquet(p, hfRows(2), nil, 10, false)
	if src, err := OpenSourceWith(p, SourceOptions{IDColumn: "label"}); err != nil || !slices.Equal(ids(src), []string{"0", "1"}) {
		t.Errorf("--id-column label: %v", err)
	}
}

func TestHFParquetBadInput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.parquet")
	datasetfixture.WriteHFParquet(p, hfRows(3), nil, 10, false)
	for _, c := range []struct {
		opt  SourceOptions
		want string
	}{
		{SourceOptions{ImageColumn: "img"}, `no image column "img" (columns: image, label)`},
		{SourceOptions{ImageColumn: "label"}, `image column "label" is int64, want struct<bytes: binary, path: string> or binary`},
		{SourceOptions{LabelColumn: "fine_label"}, `no label column "fine_label"`},
		{SourceOptions{IDColumn: "nope"}, `no id column "nope"`},
	} {
		if _, err := OpenSourceWith(p, c.opt); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%+v: %v, want %q", c.opt, err, c.want)
		}
	}
	// An image over the limit is an item with Err; the stream goes on.
	src, err := OpenSourceWith(p, SourceOptions{MaxImageBytes: 5})
	if err != nil {
		t.Fatal(err)
	}
	for it, err := range src.Stream(all(3)) {
		if err != nil || it.Err == nil || !strings.Contains(it.Err.Error(), "over the image limit") {
			t.Errorf("limit: %+v %v", it, err)
		}
	}
	// Not Parquet, and cut Parquet: one-line errors naming the file.
	data, _ := os.ReadFile(p)
	for _, n := range []int{0, 10, len(data) / 2, len(data) - 3} {
		os.WriteFile(filepath.Join(dir, "cut.parquet"), data[:n], 0o644)
		if _, err := OpenSource(filepath.Join(dir, "cut.parquet")); err == nil || !strings.Contains(err.Error(), "cut.parquet") {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
	// A folder holding tars and Parquet files (img2dataset's output: a metadata .parquet beside
	// each tar) is a WebDataset.
	writeTar(t, filepath.Join(dir, "a.tar"), false, sample{Key: "k", Members: []member{m("jpg", "x")}})
	os.Remove(filepath.Join(dir, "cut.parquet"))
	if src, err := OpenSource(dir); err != nil || !strings.HasPrefix(src.Name(), "webdataset") {
		t.Errorf("tars beside Parquet files: %v", err)
	}
}
