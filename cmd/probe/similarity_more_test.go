package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
)

// simRef is testdata/similarity/reference.json, written by tools/similarity/reference.py: an
// independent float64 NumPy implementation of the five measures (explicit n×n matrices) on the
// fixtures beside it.
type simRef struct {
	KNNK      int      `json:"knn_k"`
	SVCCADims int      `json:"svcca_dims"`
	Columns   []string `json:"columns"`
	Cases     map[string]struct {
		AgainstColumns []string                `json:"against_columns"`
		N              int                     `json:"n"`
		Matrix         map[string][][]*float64 `json:"matrix"`
	} `json:"cases"`
}

const simFixtures = "../../testdata/similarity"

// writeFixtureParquet stores the fixture's three float32 layers (features/NAME.npy with
// features/ids.txt) as one Parquet file of ours: "columns of one file".
func writeFixtureParquet(t *testing.T, path string, names []string) {
	t.Helper()
	var cols []probe.Column
	var data []*probe.Foreign
	for _, name := range names {
		f, err := probe.ReadNPYFeatures(filepath.Join(simFixtures, "features", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, probe.Column{Name: name, Dim: f.Dim})
		data = append(data, f)
	}
	w, err := probe.Create(path, cols, probe.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range data[0].IDs {
		vecs := make([][]float32, len(data))
		for c, f := range data {
			vecs[c] = f.Data[i*f.Dim : (i+1)*f.Dim]
		}
		if err := w.Write(probe.Row{Index: i, ID: id, Vectors: vecs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Each new measure through `probe similarity` agrees with the NumPy float64 reference within 1e-4
// (1e-3 for procrustes), for the columns of one file with each other, against a float32 .npy with
// ids in another order (NAME.ids.txt), a float64 .npy with export's ids.txt (`id<TAB>split`,
// CRLF), and a clip-retrieval folder of two float16 parts.
func TestSimilarityNewMethodsMatchNumpy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(simFixtures, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref simRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	features := filepath.Join(dir, "features.parquet")
	writeFixtureParquet(t, features, ref.Columns)
	against := map[string]string{
		"self":   "",
		"vit":    filepath.Join(simFixtures, "vit.npy"),
		"dino64": filepath.Join(simFixtures, "vit64", "dino.npy"),
		"clip":   filepath.Join(simFixtures, "clip"),
	}
	methods := []string{"mutual-knn", "cknna", "svcca", "procrustes", "cka-angular"}
	if testing.Short() {
		methods = []string{"mutual-knn", "cknna"}
	}
	for name, c := range ref.Cases {
		for _, m := range methods {
			t.Run(name+"/"+m, func(t *testing.T) {
				out := filepath.Join(dir, name+"-"+m)
				args := []string{"similarity", "--features", features, "--method", m, "--out", out}
				if against[name] != "" {
					args = append(args, "--against", against[name])
				}
				if _, errOut, code := run(t, args...); code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				got := readSimJSON(t, out)
				if got.N != c.N || strings.Join(got.AgainstColumns, ",") != strings.Join(c.AgainstColumns, ",") {
					t.Fatalf("n %d against %v; want %d, %v", got.N, got.AgainstColumns, c.N, c.AgainstColumns)
				}
				tol := 1e-4
				if m == "procrustes" {
					tol = 1e-3
				}
				want := c.Matrix[m]
				for i := range want {
					for j := range want[i] {
						g, w := got.Matrix[i][j], want[i][j]
						if (g == nil) != (w == nil) || (g != nil && math.Abs(*g-*w) > tol) {
							t.Errorf("[%d][%d] = %s, want %s (±%g)", i, j, fmtPtr(g), fmtPtr(w), tol)
						}
					}
				}
				md, err := os.ReadFile(filepath.Join(out, "report.md"))
				if err != nil {
					t.Fatal(err)
				}
				if distance := m == "procrustes" || m == "cka-angular"; distance != strings.Contains(string(md), "smaller = more similar") {
					t.Errorf("report.md of %s: says distance/smaller = more similar: %v", m, !distance)
				}
			})
		}
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return strings.TrimRight(strings.TrimRight(jsonNumber(*p), "0"), ".")
}

func jsonNumber(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
