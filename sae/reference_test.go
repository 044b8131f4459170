package sae

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
)

// fixture names a data set in testdata/sae and the hyperparameters its PyTorch reference used
// (tools/sae/make_fixtures.sh; the reference is tools/sae/sae_reference.py, the same recipe in
// torch autograd with torch.optim.Adam).
type fixture struct {
	name    string
	open    func(t testing.TB) Data
	cfg     Config
	shortOK bool // cheap enough for the race run
}

func openTokenFixture(base string) func(t testing.TB) Data {
	return func(t testing.TB) Data {
		tk, err := probe.OpenTokens(base)
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Verify(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tk.Close() })
		return TokenData{T: tk}
	}
}

func openColumnFixture(path, column string) func(t testing.TB) Data {
	return func(t testing.TB) Data {
		r, err := probe.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tab, err := r.Load(column)
		if err != nil {
			t.Fatal(err)
		}
		x, d, err := tab.Vector(column)
		if err != nil {
			t.Fatal(err)
		}
		return &Matrix{X: x, D: d, IDs: tab.IDs}
	}
}

var fixtures = []fixture{
	{"synthetic", openTokenFixture("../testdata/sae/synthetic.tokens/sparse"),
		Config{Dict: 128, K: 4, Epochs: 30, Batch: 64, LR: 1e-3, Seed: 1, Holdout: 0.1}, true},
	{"demo_tokens", openTokenFixture("../testdata/sae/demo.tokens/block2"),
		Config{Dict: 128, K: 4, Epochs: 10, Batch: 128, LR: 1e-3, Seed: 1, Holdout: 0.1}, false},
	{"demo_column", openColumnFixture("../testdata/sae/demo.parquet", "block2_mean"),
		Config{Dict: 64, K: 2, Epochs: 50, Batch: 64, LR: 1e-3, Seed: 1, Holdout: 0.1}, false},
}

type referenceResult struct {
	Train, Holdout Metrics
	HoldoutIDs     []string `json:"holdout_ids"`
	Dict, K        int
	AuxK           int `json:"aux_k"`
	Epochs, Batch  int
	LR             float64
}

// TestHoldoutFVUMatchesPyTorch trains on each fixture with the reference's hyperparameters and
// split and compares the holdout FVU with the PyTorch implementation's (testdata/sae/reference):
// within 10% of it plus 0.01, the bar (the two draw different initialisations and
// shuffles). L0 must equal k on both splits.
func TestHoldoutFVUMatchesPyTorch(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			if testing.Short() && !f.shortOK {
				t.Skip("long in the race run; the plain run checks it")
			}
			raw, err := os.ReadFile("../testdata/sae/reference/" + f.name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var ref referenceResult
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			if ref.Dict != f.cfg.Dict || ref.K != f.cfg.K || ref.Epochs != f.cfg.Epochs || ref.Batch != f.cfg.Batch || ref.LR != f.cfg.LR {
				t.Fatalf("the reference ran with dict %d k %d epochs %d batch %d lr %v; the test uses %+v", ref.Dict, ref.K, ref.Epochs, ref.Batch, ref.LR, f.cfg)
			}
			data := f.open(t)
			split := MakeSplit(data.Units(), f.cfg.Holdout, f.cfg.Seed)
			var ids []string
			for _, u := range split.Holdout {
				ids = append(ids, data.UnitID(u))
			}
			if !slices.Equal(ids, ref.HoldoutIDs) {
				t.Fatalf("holdout ids differ from the reference's split: %d vs %d ids", len(ids), len(ref.HoldoutIDs))
			}
			st, err := Train(data, split.Train, f.cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st.AuxK != ref.AuxK {
				t.Errorf("aux_k %d, reference %d", st.AuxK, ref.AuxK)
			}
			hold := Evaluate(st.Model, data, split.Holdout)
			train := Evaluate(st.Model, data, split.Train)
			tol := 0.1*ref.Holdout.FVU + 0.01
			t.Logf("holdout fvu %.4f, PyTorch %.4f (tolerance %.4f); train %.4f vs %.4f; dead %.3f vs %.3f",
				hold.FVU, ref.Holdout.FVU, tol, train.FVU, ref.Train.FVU, train.DeadFraction, ref.Train.DeadFraction)
			if math.Abs(hold.FVU-ref.Holdout.FVU) > tol {
				t.Errorf("holdout fvu %.4f, PyTorch %.4f: differ by more than %.4f", hold.FVU, ref.Holdout.FVU, tol)
			}
			if hold.L0 != float64(f.cfg.K) || train.L0 != float64(f.cfg.K) {
				t.Errorf("l0 %v (holdout), %v (train); want k = %d", hold.L0, train.L0, f.cfg.K)
			}
		})
	}
}
