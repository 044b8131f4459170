package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
)

// labelTable is n rows of a 2-wide feature column whose labels cycle through labels, with the
// rows of each class clustered apart so that a probe separates them.
func labelTable(labels []int64, n int) *probe.Table {
	t := &probe.Table{Columns: []probe.Column{{Name: "decoder", Dim: 2}}, Vectors: [][]float32{nil}}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		c := i % len(labels)
		t.Index = append(t.Index, int64(i))
		t.IDs = append(t.IDs, fmt.Sprintf("img%d", i))
		t.Labels = append(t.Labels, labels[c])
		t.HasLabel = append(t.HasLabel, true)
		t.LabelNames = append(t.LabelNames, "")
		t.Splits = append(t.Splits, "")
		t.Vectors[0] = append(t.Vectors[0], float32(3*c)+float32(rng.NormFloat64())*0.1, float32(rng.NormFloat64()))
	}
	return t
}

// TestLinearMapsDistinctLabels: classes are the distinct label values in increasing order, not
// 0…max label: ImageNet synset offsets (n01440764 → 1440764) and a label of 2^40 made `probe
// linear` allocate per possible value, 8.6 GB for 200 rows or a crash (issue 19 item 5).
func TestLinearMapsDistinctLabels(t *testing.T) {
	cases := map[string][]int64{
		"synsets": {1440764, 1443537, 1484850, 1491361},
		"2^40":    {7, 1 << 40, 3},
	}
	for name, labels := range cases {
		t.Run(name, func(t *testing.T) {
			lt, dropped, err := linearTable(labelTable(labels, 200), "label", "none")
			if err != nil || dropped != 0 {
				t.Fatalf("%v (%d dropped)", err, dropped)
			}
			sorted := slices.Sorted(slices.Values(labels))
			want := make([]string, len(sorted))
			for i, l := range sorted {
				want[i] = fmt.Sprint(l)
			}
			if !slices.Equal(lt.Classes, want) {
				t.Fatalf("%d classes %q…, want %q", len(lt.Classes), lt.Classes[:min(len(lt.Classes), 5)], want)
			}
			for i, y := range lt.Y {
				if sorted[y] != labels[i%len(labels)] {
					t.Fatalf("row %d: class %d (%s), want label %d", i, y, lt.Classes[y], labels[i%len(labels)])
				}
			}
		})
	}
}

// TestLinearCommandLargeLabels runs `probe linear` end to end on a features file whose labels
// are synset-like numbers; the report names the classes by their label values.
func TestLinearCommandLargeLabels(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.parquet")
	tab := labelTable([]int64{1440764, 1443537, 1 << 40}, 150)
	w, err := probe.Create(path, tab.Columns, probe.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range tab.IDs {
		err := w.Write(probe.Row{Index: i, ID: tab.IDs[i], Label: tab.Labels[i], HasLabel: true, Vectors: [][]float32{tab.Vectors[0][2*i : 2*i+2]}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := runOK(t, "linear", "--features", path, "--C", "1", "--no-knn")
	if !strings.Contains(out, "decoder") {
		t.Errorf("no result for the decoder column:\n%s", out)
	}
}
