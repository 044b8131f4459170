package linear

import (
	"math"
	"reflect"
	"testing"
)

// A hand-worked example with 6 classes (so top-5 is defined). Scores row by row:
//
//	true 0, scores favour 0            → correct
//	true 0, scores favour 1            → predicted 1; 0 is 2nd → in top-5
//	true 1, scores favour 1            → correct
//	true 2, 0 is lowest of all 6       → predicted 3; 2 ranks 6th → not in top-5
//	true 2, tie between 2 and 4        → tie goes to the lower index: predicted 2
//
// Confusion: [0][0]=1 [0][1]=1 [1][1]=1 [2][3]=1 [2][2]=1. Top-1 3/5, top-5 4/5.
// F1: class 0 p=1 r=1/2 → 2/3; class 1 p=1/2 r=1 → 2/3; class 2 p=1 r=1/2 → 2/3;
// class 3 p=0 (no true rows) → 0; classes 4, 5 never occur → excluded. Macro-F1 = 2/4 = 0.5.
// Balanced accuracy: recalls of the classes present in y (0, 1, 2) are 1/2, 1, 1/2 → 2/3
// (scikit-learn's balanced_accuracy_score, where top-1 is 3/5).
func TestScoreMetricsHandWorked(t *testing.T) {
	scores := []float64{
		5, 1, 0, 0, 0, 0,
		2, 3, 0, 0, 0, 0,
		0, 4, 1, 0, 0, 0,
		1, 2, 0, 9, 3, 4,
		0, 0, 7, 0, 7, 0,
	}
	y := []int{0, 0, 1, 2, 2}
	m := ScoreMetrics(scores, 6, y, false)
	if m.Top1 != 0.6 || m.Top5 != 0.8 {
		t.Errorf("top-1 %v top-5 %v, want 0.6 0.8", m.Top1, m.Top5)
	}
	if math.Abs(m.BalancedAcc-2.0/3) > 1e-15 {
		t.Errorf("balanced accuracy %v, want 2/3", m.BalancedAcc)
	}
	if math.Abs(m.MacroF1-0.5) > 1e-15 {
		t.Errorf("macro-F1 %v, want 0.5", m.MacroF1)
	}
	wantConf := [][]int{{1, 1, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0}, {0, 0, 1, 1, 0, 0}, make([]int, 6), make([]int, 6), make([]int, 6)}
	if !reflect.DeepEqual(m.Confusion, wantConf) {
		t.Errorf("confusion %v, want %v", m.Confusion, wantConf)
	}
	if m.PerClassAcc[0] != 0.5 || m.PerClassAcc[1] != 1 || m.PerClassAcc[2] != 0.5 || !math.IsNaN(m.PerClassAcc[3]) {
		t.Errorf("per-class %v", m.PerClassAcc)
	}
	if !math.IsNaN(m.LogLoss) {
		t.Errorf("log-loss from vote scores should be undefined, got %v", m.LogLoss)
	}
}

// Log-loss from log-probabilities: rows with p(true) = 0.5 and 0.25 → (ln 2 + ln 4)/2 = 1.5 ln 2.
func TestScoreMetricsLogLoss(t *testing.T) {
	lp := []float64{math.Log(0.5), math.Log(0.5), math.Log(0.75), math.Log(0.25)}
	m := ScoreMetrics(lp, 2, []int{1, 1}, true)
	if want := 1.5 * math.Ln2; math.Abs(m.LogLoss-want) > 1e-15 {
		t.Errorf("log-loss %v, want %v", m.LogLoss, want)
	}
	if m.Top1 != 0 { // row 0 ties → the lower index, class 0; row 1 predicts 0
		t.Errorf("top-1 %v, want 0", m.Top1)
	}
}
