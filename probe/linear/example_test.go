package linear_test

import (
	"bytes"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/perceiverkit/perceiver/probe/linear"
)

// twoBlobs makes 400 rows of 2 features: class "cat" around (−2, 0), class "dog" around (2, 0).
func twoBlobs() linear.Dataset {
	r := rand.New(rand.NewPCG(1, 1))
	ds := linear.Dataset{N: 400, D: 2, Classes: []string{"cat", "dog"}}
	for i := range ds.N {
		c := i % 2
		ds.Y = append(ds.Y, c)
		ds.X = append(ds.X, float32(4*c-2)+float32(r.NormFloat64()), float32(r.NormFloat64()))
	}
	return ds
}

func ExampleEvaluate() {
	res, err := linear.Evaluate("block8_mean", twoBlobs(), linear.Config{Seed: 7})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("train/val/test %d/%d/%d\n", res.NTrain, res.NVal, res.NTest)
	fmt.Printf("test top-1 %.2f, kNN top-1 %.2f\n", res.Test.Top1, res.KNN.Top1)
	// Output:
	// train/val/test 280/40/80
	// test top-1 0.97, kNN top-1 0.97
}

func ExampleEvaluateAll() {
	ds := twoBlobs()
	noise := make([]float32, len(ds.X))
	r := rand.New(rand.NewPCG(2, 2))
	for i := range noise {
		noise[i] = float32(r.NormFloat64())
	}
	table := &linear.Table{
		Columns: []string{"decoder", "cross_mean"},
		Values:  [][]float32{ds.X, noise},
		Dims:    []int{2, 2},
		N:       ds.N, Y: ds.Y, Classes: ds.Classes,
	}
	results, err := linear.EvaluateAll(table, nil, linear.Config{Seed: 1, NoKNN: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("%s: above chance %v\n", r.Column, r.Test.Top1 > 0.75)
	}
	// Output:
	// cross_mean: above chance false
	// decoder: above chance true
}

func ExampleFit() {
	// Rows 0 and 1 are class 0, rows 2 and 3 class 1; fit on all rows with C = 1.
	x := []float32{-2, 0, -1, 1, 1, 0, 2, 1}
	y := []int{0, 0, 1, 1}
	m, info, err := linear.Fit(x, 2, nil, y, 2, 1, linear.FitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	lp := make([]float64, 4*2)
	m.LogProbabilities(lp, x, nil)
	fmt.Println(info.Status, lp[0] > lp[1], lp[6] < lp[7])
	// Output: GradientThreshold true true
}

func ExampleWriteNPY() {
	var b bytes.Buffer
	if err := linear.WriteNPY(&b, []float32{1, 2, 3, 4, 5, 6}, 2, 3); err != nil {
		log.Fatal(err)
	}
	header := b.String()[10:strings.IndexByte(b.String(), '\n')]
	fmt.Println(strings.TrimSpace(header), b.Len())
	// Output: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } 152
}

func ExampleWriteNPYInt64() {
	var b bytes.Buffer
	if err := linear.WriteNPYInt64(&b, []int64{3, 1, 4}, 3); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.TrimSpace(b.String()[10:strings.IndexByte(b.String(), '\n')]))
	// Output: {'descr': '<i8', 'fortran_order': False, 'shape': (3,), }
}

func ExampleWriteCSV() {
	err := linear.WriteCSV(os.Stdout,
		linear.CSVColumn{Name: "label", Strings: []string{"cat", "dog"}},
		linear.CSVColumn{Name: "decoder", Floats: []float32{0.5, -1, 2, 0.25}, Width: 2})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// label,decoder_0,decoder_1
	// cat,0.5,-1
	// dog,2,0.25
}

func ExampleStratifiedSplit() {
	y := []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}
	s := linear.StratifiedSplit(y, 2, 0.2, 0.2, 1)
	fmt.Println(len(s.Train), len(s.Val), len(s.Test))
	// Output: 9 3 3
}

func ExampleSplitsFromColumn() {
	s, err := linear.SplitsFromColumn([]string{"train", "validation", "test", "train"})
	fmt.Println(s.Train, s.Val, s.Test, err)
	// Output: [0 3] [1] [2] <nil>
}

func ExampleSortByDepth() {
	cols := []string{"decoder", "block2_mean", "logits", "cross_mean", "block10_mean", "block1_mean"}
	linear.SortByDepth(cols, linear.DefaultLayersPerBlock)
	fmt.Println(cols)
	// Output: [cross_mean block1_mean block2_mean block10_mean decoder logits]
}

func ExampleScoreMetrics() {
	// Two rows, three classes; scores are log-probabilities.
	lp := []float64{-0.1, -3, -3, -2, -0.2, -3}
	m := linear.ScoreMetrics(lp, 3, []int{0, 2}, true)
	fmt.Printf("top-1 %.1f, log-loss %.2f, confusion %v\n", m.Top1, m.LogLoss, m.Confusion)
	// Output: top-1 0.5, log-loss 1.55, confusion [[1 0 0] [0 0 0] [0 1 0]]
}

func ExampleKNNScores() {
	// Bank: two rows of class 0 pointing right, one of class 1 pointing up. Query: up-right-ish.
	x := []float32{1, 0, 2, 0.1, 0, 1, 0.2, 1}
	y := []int{0, 0, 1, 0}
	votes := make([]float64, 2)
	linear.KNNScores(votes, x, 2, y, 2, []int{0, 1, 2}, []int{3}, linear.KNNOptions{K: 1})
	fmt.Println(votes[1] > 0, votes[0] == 0)
	// Output: true true
}

func ExampleNewStandardizer() {
	x := []float32{1, 5, 3, 5}
	st := linear.NewStandardizer(x, 2, nil)
	fmt.Println(st.Mean, st.Scale)
	// Output: [2 5] [1 1]
}

func ExampleDepth() {
	d, known := linear.Depth("block3_mean", linear.DefaultLayersPerBlock)
	fmt.Println(d, known)
	// Output: 18 true
}

func ExampleWriteReport() {
	res, err := linear.Evaluate("decoder", twoBlobs(), linear.Config{Seed: 7})
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "probe-report")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := linear.WriteReport(dir, []*linear.Result{res}, linear.Config{Seed: 7}, map[string]any{"features": "two blobs"}); err != nil {
		log.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		fmt.Println(filepath.Base(f))
	}
	// Output:
	// accuracy-by-layer.png
	// confusion.png
	// report.json
	// report.md
}

func ExampleFitStandardized() {
	// Already standardised 1-D data, two classes; params are [W (2×1) | b (2)]. The optimum is
	// W = [−a, a] with a = n·σ(−2a)·C, here a = 4/(1+e^{2a}) ≈ 0.741.
	x := []float64{-1, -1, 1, 1}
	y := []int{0, 0, 1, 1}
	p, _, err := linear.FitStandardized(x, 4, 1, 2, y, 1, nil, linear.FitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("W = [%.3f %.3f], equal intercepts %v\n", p[0], p[1], fmt.Sprintf("%.6f", p[2]) == fmt.Sprintf("%.6f", p[3]))
	// Output: W = [-0.741 0.741], equal intercepts true
}

func ExampleStratifiedFolds() {
	y := []int{0, 0, 0, 0, 1, 1}
	folds := linear.StratifiedFolds([]int{0, 1, 2, 3, 4, 5}, y, 2, 2, 3)
	fmt.Println(len(folds[0]), len(folds[1]))
	// Output: 3 3
}

func ExampleParseSplit() {
	s, err := linear.ParseSplit("Validation")
	fmt.Println(s, err)
	_, err = linear.ParseSplit("holdout")
	fmt.Println(err)
	// Output:
	// val <nil>
	// linear: split value "holdout" is not train, val or test
}

func ExampleTable_SelectColumns() {
	t := &linear.Table{Columns: []string{"cross_mean", "decoder"}}
	all, _ := t.SelectColumns([]string{"all"})
	_, err := t.SelectColumns([]string{"block3_mean"})
	fmt.Println(all)
	fmt.Println(err)
	// Output:
	// [cross_mean decoder]
	// linear: column "block3_mean" not in features (have: cross_mean, decoder)
}

func ExampleDataset_Validate() {
	ds := linear.Dataset{X: []float32{1, 2, 3, float32(math.NaN())}, N: 2, D: 2, Y: []int{0, 1}, Classes: []string{"a", "b"}}
	fmt.Println(ds.Validate("block1_mean"))
	// Output: linear: column "block1_mean": row 1 feature 1 is NaN
}

func ExampleConfig_WithDefaults() {
	cfg := linear.Config{Seed: 3}.WithDefaults()
	fmt.Println(cfg.Cs, cfg.ValFrac, cfg.TestFrac, cfg.Tol, cfg.KNN.K, cfg.KNN.Temperature)
	// Output: [1e-06 1e-05 0.0001 0.001 0.01 0.1 1 10 100 1000 10000 100000 1e+06] 0.1 0.2 1e-05 20 0.07
}

func ExampleStandardizer_Apply() {
	x := []float32{1, 10, 3, 30}
	st := linear.NewStandardizer(x, 2, nil)
	out := make([]float64, 4)
	st.Apply(out, x, 2, nil)
	fmt.Println(out)
	// Output: [-1 -1 1 1]
}

func ExampleModel_LogProbabilities() {
	// A hand-made model on 1 feature: class 1 wins for positive inputs.
	m := &linear.Model{Classes: 2, Dim: 1, Mean: []float64{0}, Scale: []float64{1}, W: []float64{-1, 1}, B: []float64{0, 0}}
	lp := make([]float64, 2)
	m.LogProbabilities(lp, []float32{0}, nil)
	fmt.Printf("%.4f %.4f\n", lp[0], lp[1])
	// Output: -0.6931 -0.6931
}

func ExampleMetrics_MarshalJSON() {
	m := linear.ScoreMetrics([]float64{1, 0}, 2, []int{0}, false)
	b, _ := m.MarshalJSON()
	fmt.Println(string(b))
	// Output: {"n":1,"top1":1,"top5":null,"balanced_acc":1,"macro_f1":1,"log_loss":null,"per_class_acc":[1,null],"confusion":[[1,0],[0,0]]}
}

func ExampleBestResult() {
	a := &linear.Result{Column: "cross_mean", Test: linear.Metrics{Top1: 0.4}}
	b := &linear.Result{Column: "block4_mean", Test: linear.Metrics{Top1: 0.7}}
	fmt.Println(linear.BestResult([]*linear.Result{a, b}).Column)
	// Output: block4_mean
}

func ExampleMarkdown() {
	res, err := linear.Evaluate("decoder", twoBlobs(), linear.Config{Seed: 7, Cs: []float64{1}})
	if err != nil {
		log.Fatal(err)
	}
	md := string(linear.Markdown([]*linear.Result{res}, linear.Config{Seed: 7, Cs: []float64{1}}))
	fmt.Println(strings.Split(md, "\n")[0])
	// Output: # Linear probe report
}

func ExamplePlotAccuracyByLayer() {
	results := []*linear.Result{
		{Column: "cross_mean", BestC: 0.1, Test: linear.Metrics{Top1: 0.3}},
		{Column: "decoder", BestC: 1, Test: linear.Metrics{Top1: 0.8}},
	}
	path := filepath.Join(os.TempDir(), "accuracy-by-layer-example.png")
	defer os.Remove(path)
	fmt.Println(linear.PlotAccuracyByLayer(path, results))
	// Output: <nil>
}

func ExamplePlotConfusion() {
	r := &linear.Result{Column: "decoder", Classes: []string{"cat", "dog"},
		Test: linear.Metrics{Top1: 0.75, Confusion: [][]int{{3, 1}, {0, 0}}}}
	path := filepath.Join(os.TempDir(), "confusion-example.png")
	defer os.Remove(path)
	fmt.Println(linear.PlotConfusion(path, r))
	// Output: <nil>
}
