package serve

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/perceiverkit/perceiver/probe/linear"
)

// Features are stored embeddings (probe extract's Parquet) shown next to the images: the
// layer-by-layer linear-probe report, computed in the background when the server starts, and a
// PCA scatter of any column.
type Features struct {
	Source string        // the file or folder, for display
	Table  *linear.Table // labelled rows; every column is probed
	Config linear.Config // the probe protocol (probe linear's defaults when zero)
}

// maxScatter bounds the points of a PCA scatter: more rows are sampled at an even stride, which
// keeps the page light and the decomposition at most a few seconds for 1,024-wide columns.
const maxScatter = 2000

// featureState is the report's progress and the PCA results computed so far.
type featureState struct {
	f   *Features
	mu  sync.Mutex
	rep featuresJSON
	pca map[string]*pcaJSON
	grp group[*pcaJSON]
}

// featuresJSON is GET /api/features.
type featuresJSON struct {
	Source   string           `json:"source"`
	Rows     int              `json:"rows"`
	Columns  []featureColumn  `json:"columns"` // in depth order
	Classes  []string         `json:"classes"`
	Status   string           `json:"status"` // "running", "done" or "error"
	Progress int              `json:"progress"`
	Error    string           `json:"error,omitempty"`
	Results  []*linear.Result `json:"results"` // in depth order, as they finish
	Best     string           `json:"best,omitempty"`
	Seconds  float64          `json:"seconds"`
}

type featureColumn struct {
	Name string `json:"name"`
	Dim  int    `json:"dim"`
}

// pcaJSON is GET /api/features/pca.
type pcaJSON struct {
	Column    string       `json:"column"`
	Rows      int          `json:"rows"`      // rows in the table
	Points    [][3]float32 `json:"points"`    // [pc1, pc2, label] of the sampled rows
	Explained [2]float64   `json:"explained"` // fraction of the variance along each axis
	Classes   []string     `json:"classes"`
}

func startFeatures(f *Features) *featureState {
	st := &featureState{f: f, pca: map[string]*pcaJSON{}}
	cfg := f.Config.WithDefaults()
	names := slices.Clone(f.Table.Columns)
	linear.SortByDepth(names, cfg.LayersPerBlock)
	st.rep = featuresJSON{Source: f.Source, Rows: f.Table.N, Classes: f.Table.Classes, Status: "running", Results: []*linear.Result{}}
	for _, n := range names {
		i := slices.Index(f.Table.Columns, n)
		st.rep.Columns = append(st.rep.Columns, featureColumn{Name: n, Dim: f.Table.Dims[i]})
	}
	go st.evaluate(names, cfg)
	return st
}

// evaluate probes every column in depth order, publishing each result as it comes.
func (st *featureState) evaluate(names []string, cfg linear.Config) {
	start := time.Now()
	finish := func(status, msg string) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.rep.Status, st.rep.Error = status, msg
		st.rep.Best = ""
		if b := linear.BestResult(st.rep.Results); b != nil {
			st.rep.Best = b.Column
		}
		st.rep.Seconds = time.Since(start).Seconds()
	}
	defer func() {
		if p := recover(); p != nil {
			finish("error", fmt.Sprint("probe panicked: ", p))
		}
	}()
	for _, name := range names {
		ds, err := st.f.Table.Dataset(name)
		if err == nil {
			var r *linear.Result
			if r, err = linear.Evaluate(name, ds, cfg); err == nil {
				st.mu.Lock()
				st.rep.Results = append(st.rep.Results, r)
				st.rep.Progress = len(st.rep.Results)
				st.rep.Seconds = time.Since(start).Seconds()
				st.mu.Unlock()
				continue
			}
		}
		finish("error", err.Error())
		return
	}
	finish("done", "")
}

func (st *featureState) report() featuresJSON {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.rep
	r.Results = slices.Clone(r.Results)
	return r
}

func (s *Server) handleFeatures(w http.ResponseWriter, r *http.Request) {
	if s.feat == nil {
		writeError(w, http.StatusNotFound, "no --features given")
		return
	}
	writeJSON(w, http.StatusOK, s.feat.report())
}

func (s *Server) handlePCA(w http.ResponseWriter, r *http.Request) {
	if s.feat == nil {
		writeError(w, http.StatusNotFound, "no --features given")
		return
	}
	name := r.URL.Query().Get("column")
	t := s.feat.f.Table
	if !slices.Contains(t.Columns, name) {
		s.fail(w, r, badRequest("column=%q: not a feature column", name))
		return
	}
	s.feat.mu.Lock()
	p, ok := s.feat.pca[name]
	s.feat.mu.Unlock()
	if !ok {
		var err error
		p, err = s.feat.grp.do(name, func() (*pcaJSON, error) {
			var p *pcaJSON
			err := s.aux.do(context.WithoutCancel(r.Context()), func() error {
				var err error
				p, err = scatter(t, name)
				return err
			})
			if err == nil {
				s.feat.mu.Lock()
				s.feat.pca[name] = p
				s.feat.mu.Unlock()
			}
			return p, err
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, p)
}

// scatter projects (a sample of) a column's rows on its first two principal components. The
// data are centred, not scaled (gonum's stat.PC); the signs of the axes are arbitrary.
func scatter(t *linear.Table, name string) (*pcaJSON, error) {
	ds, err := t.Dataset(name)
	if err != nil {
		return nil, err
	}
	if ds.N < 2 || ds.D < 2 {
		return nil, badRequest("column %q: a PCA scatter needs at least 2 rows and 2 dimensions", name)
	}
	rows := make([]int, 0, min(ds.N, maxScatter))
	for i := range min(ds.N, maxScatter) {
		rows = append(rows, i*ds.N/min(ds.N, maxScatter))
	}
	x := mat.NewDense(len(rows), ds.D, nil)
	for i, r := range rows {
		for j, v := range ds.X[r*ds.D : (r+1)*ds.D] {
			x.Set(i, j, float64(v))
		}
	}
	out := &pcaJSON{Column: name, Rows: ds.N, Classes: ds.Classes, Points: make([][3]float32, len(rows))}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return nil, fmt.Errorf("column %q: the decomposition did not converge", name)
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	vars := pc.VarsTo(nil)
	var total float64
	for _, v := range vars {
		total += v
	}
	means := make([]float64, ds.D)
	for j := range means {
		means[j] = stat.Mean(mat.Col(nil, j, x), nil)
	}
	for i := range rows {
		var p [2]float64
		for j := range ds.D {
			c := x.At(i, j) - means[j]
			p[0] += c * vecs.At(j, 0)
			p[1] += c * vecs.At(j, 1)
		}
		out.Points[i] = [3]float32{float32(p[0]), float32(p[1]), float32(ds.Y[rows[i]])}
	}
	if total > 0 && !math.IsNaN(total) {
		out.Explained = [2]float64{vars[0] / total, vars[1] / total}
	}
	return out, nil
}
