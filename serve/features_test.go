package serve

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/probe/linear"
)

// syntheticFeatures: 300 rows of 3 classes. "decoder" (dim 5) is t·u plus noise of 1% of its
// spread, t the row's latent coordinate, so its first principal component is u and explains
// nearly all the variance; "layer2_mean" (dim 4) separates the classes by their means.
func syntheticFeatures() (*linear.Table, []float64) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 300
	u := []float64{0.5, -0.5, 0.5, 0.5, 0} // unit length
	dec := make([]float32, n*5)
	lay := make([]float32, n*4)
	y := make([]int, n)
	ts := make([]float64, n)
	for i := range n {
		y[i] = i % 3
		ts[i] = r.NormFloat64() * 10
		for j := range 5 {
			dec[i*5+j] = float32(ts[i]*u[j] + r.NormFloat64()*0.1)
		}
		for j := range 4 {
			lay[i*4+j] = float32(r.NormFloat64())
		}
		lay[i*4+y[i]] += 4
	}
	return &linear.Table{
		Columns: []string{"decoder", "layer2_mean"}, Values: [][]float32{dec, lay}, Dims: []int{5, 4},
		N: n, Y: y, Classes: []string{"a", "b", "c"},
	}, ts
}

func TestFeatures(t *testing.T) {
	tab, ts := syntheticFeatures()
	_, srv := newTestServer(t, Options{Features: &Features{Source: "synthetic", Table: tab, Config: linear.Config{Cs: []float64{0.1, 1}}}})
	var info infoJSON
	getJSON(t, srv.URL+"/api/info", &info)
	if !info.Features {
		t.Fatal("info does not announce the features")
	}
	var rep featuresJSON
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		getJSON(t, srv.URL+"/api/features", &rep)
		if rep.Status != "running" || time.Now().After(deadline) {
			break
		}
	}
	if rep.Status != "done" || len(rep.Results) != 2 || rep.Rows != 300 {
		t.Fatalf("report: status %s (%s), %d results, %d rows", rep.Status, rep.Error, len(rep.Results), rep.Rows)
	}
	// Depth order: layer2 before the decoder.
	if rep.Columns[0].Name != "layer2_mean" || rep.Results[0].Column != "layer2_mean" || rep.Results[1].Column != "decoder" {
		t.Errorf("order: %+v", rep.Columns)
	}
	// The class means are 4 standard deviations apart along their own axes: nearly separable.
	if acc := rep.Results[0].Test.Top1; acc < 0.9 || rep.Best != "layer2_mean" {
		t.Errorf("layer2_mean top-1 %.3f, best %q", acc, rep.Best)
	}

	var p pcaJSON
	getJSON(t, srv.URL+"/api/features/pca?column=decoder", &p)
	if len(p.Points) != 300 || p.Rows != 300 || len(p.Classes) != 3 {
		t.Fatalf("pca: %d points of %d rows", len(p.Points), p.Rows)
	}
	// Reference: PC1 is ±t up to the noise, and explains var(t)/(var(t)+5·0.01) ≈ 0.9995.
	var sxy, sxx, syy, mx, my float64
	for i, pt := range p.Points {
		mx += float64(pt[0]) / 300
		my += ts[i] / 300
	}
	for i, pt := range p.Points {
		dx, dy := float64(pt[0])-mx, ts[i]-my
		sxy, sxx, syy = sxy+dx*dy, sxx+dx*dx, syy+dy*dy
		if int(pt[2]) != tab.Y[i] {
			t.Fatalf("point %d has label %v, want %d", i, pt[2], tab.Y[i])
		}
	}
	if corr := math.Abs(sxy / math.Sqrt(sxx*syy)); corr < 0.9999 {
		t.Errorf("|corr(PC1, t)| = %.6f, want > 0.9999", corr)
	}
	if p.Explained[0] < 0.999 || p.Explained[0]+p.Explained[1] > 1+1e-9 {
		t.Errorf("explained %v", p.Explained)
	}
	if resp, _ := get(t, srv.URL+"/api/features/pca?column=nope"); resp.StatusCode != 400 {
		t.Errorf("unknown column: %d", resp.StatusCode)
	}
}

// TestScatterSamples: a column with more rows than maxScatter is sampled at an even stride.
func TestScatterSamples(t *testing.T) {
	n := maxScatter*2 + 1
	x := make([]float32, n*2)
	y := make([]int, n)
	for i := range n {
		x[2*i], x[2*i+1] = float32(i), float32(i%7)
		y[i] = i % 2
	}
	p, err := scatter(&linear.Table{Columns: []string{"c"}, Values: [][]float32{x}, Dims: []int{2}, N: n, Y: y, Classes: []string{"a", "b"}}, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Points) != maxScatter || p.Rows != n {
		t.Errorf("%d points of %d rows, want %d", len(p.Points), p.Rows, maxScatter)
	}
}
