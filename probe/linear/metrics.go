package linear

import (
	"encoding/json"
	"math"
)

// Metrics are the scores of one classifier on one split. A value that is not defined (top-5 with
// fewer than 5 classes, log-loss of the kNN vote, accuracy of a class absent from the split) is NaN
// in Go and null in JSON.
type Metrics struct {
	N           int       `json:"n"`
	Top1        float64   `json:"top1"`
	Top5        float64   `json:"top5"`
	BalancedAcc float64   `json:"balanced_acc"` // mean per-class recall over the classes present
	MacroF1     float64   `json:"macro_f1"`
	LogLoss     float64   `json:"log_loss"`      // mean −log p(true class), natural log
	PerClassAcc []float64 `json:"per_class_acc"` // recall of each class
	Confusion   [][]int   `json:"confusion"`     // [true class][predicted class]
}

// ScoreMetrics scores predictions: scores is [len(y), k], higher is more likely; ties go to the
// lower class index. If logProbs is true the scores are log-probabilities and LogLoss is computed.
func ScoreMetrics(scores []float64, k int, y []int, logProbs bool) Metrics {
	n := len(y)
	m := Metrics{N: n, Top5: math.NaN(), LogLoss: math.NaN()}
	m.Confusion = make([][]int, k)
	for c := range m.Confusion {
		m.Confusion[c] = make([]int, k)
	}
	if n == 0 {
		m.Top1, m.MacroF1, m.BalancedAcc = math.NaN(), math.NaN(), math.NaN()
		m.PerClassAcc = nanSlice(k)
		return m
	}
	top1, top5 := 0, 0
	loss := 0.0
	for i, yi := range y {
		s := scores[i*k : (i+1)*k]
		pred, better := 0, 0
		for c, v := range s {
			if v > s[pred] {
				pred = c
			}
			// Rank of the true class: how many classes beat it (ties to the lower index).
			if v > s[yi] || (v == s[yi] && c < yi) {
				better++
			}
		}
		m.Confusion[yi][pred]++
		if pred == yi {
			top1++
		}
		if better < 5 {
			top5++
		}
		if logProbs {
			loss -= s[yi]
		}
	}
	m.Top1 = float64(top1) / float64(n)
	if k >= 5 {
		m.Top5 = float64(top5) / float64(n)
	}
	if logProbs {
		m.LogLoss = loss / float64(n)
	}
	m.PerClassAcc, m.MacroF1 = perClass(m.Confusion)
	m.BalancedAcc = balanced(m.PerClassAcc)
	return m
}

// balanced is the mean recall over the classes present (scikit-learn's balanced_accuracy_score).
func balanced(recall []float64) float64 {
	s, n := 0.0, 0
	for _, r := range recall {
		if !math.IsNaN(r) {
			s += r
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// perClass returns each class's recall (NaN if absent) and the macro-F1 over the classes that
// occur as a true or predicted label (scikit-learn's f1_score(average="macro"), 0 when undefined).
func perClass(conf [][]int) ([]float64, float64) {
	k := len(conf)
	acc := make([]float64, k)
	f1Sum, used := 0.0, 0
	for c := range k {
		tp, support, predicted := conf[c][c], 0, 0
		for j := range k {
			support += conf[c][j]
			predicted += conf[j][c]
		}
		if support == 0 {
			acc[c] = math.NaN()
		} else {
			acc[c] = float64(tp) / float64(support)
		}
		if support == 0 && predicted == 0 {
			continue
		}
		used++
		if tp > 0 {
			f1Sum += 2 * float64(tp) / float64(support+predicted)
		}
	}
	if used == 0 {
		return acc, math.NaN()
	}
	return acc, f1Sum / float64(used)
}

func nanSlice(k int) []float64 {
	s := make([]float64, k)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// jsonFloat is a float64 that marshals NaN and ±Inf as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonFloat(math.NaN())
		return nil
	}
	var v float64
	err := json.Unmarshal(b, &v)
	*f = jsonFloat(v)
	return err
}

type metricsJSON struct {
	N           int         `json:"n"`
	Top1        jsonFloat   `json:"top1"`
	Top5        jsonFloat   `json:"top5"`
	BalancedAcc jsonFloat   `json:"balanced_acc"`
	MacroF1     jsonFloat   `json:"macro_f1"`
	LogLoss     jsonFloat   `json:"log_loss"`
	PerClassAcc []jsonFloat `json:"per_class_acc"`
	Confusion   [][]int     `json:"confusion"`
}

// MarshalJSON writes undefined values as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	j := metricsJSON{N: m.N, Top1: jsonFloat(m.Top1), Top5: jsonFloat(m.Top5), BalancedAcc: jsonFloat(m.BalancedAcc), MacroF1: jsonFloat(m.MacroF1),
		LogLoss: jsonFloat(m.LogLoss), Confusion: m.Confusion, PerClassAcc: make([]jsonFloat, len(m.PerClassAcc))}
	for i, v := range m.PerClassAcc {
		j.PerClassAcc[i] = jsonFloat(v)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null back as NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var j metricsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metrics{N: j.N, Top1: float64(j.Top1), Top5: float64(j.Top5), BalancedAcc: float64(j.BalancedAcc), MacroF1: float64(j.MacroF1),
		LogLoss: float64(j.LogLoss), Confusion: j.Confusion, PerClassAcc: make([]float64, len(j.PerClassAcc))}
	for i, v := range j.PerClassAcc {
		m.PerClassAcc[i] = float64(v)
	}
	return nil
}
