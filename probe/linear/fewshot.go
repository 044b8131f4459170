package linear

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// fewShot runs cfg.Seeds draws of shots train rows per class, each fitted (C chosen on the val
// rows when there are any, else the full protocol's bestC) and scored on test.
func fewShot(ds Dataset, s Splits, cs []float64, bestC float64, shots int, cfg Config, opt FitOptions) (FewShotResult, error) {
	k := len(ds.Classes)
	byClass := make([][]int, k)
	for _, r := range s.Train {
		byClass[ds.Y[r]] = append(byClass[ds.Y[r]], r)
	}
	res := FewShotResult{Shots: shots, Seeds: cfg.Seeds, MinPerClass: math.MaxInt, SelectionSplit: "val"}
	if len(s.Val) == 0 {
		res.SelectionSplit = "full-protocol C"
	}
	var balancedAcc []float64
	for draw := range cfg.Seeds {
		// One stream per (seed, shots, draw): adding shot counts or draws does not change the others.
		rng := rand.NewPCG(cfg.Seed, uint64(shots)<<32|uint64(draw))
		var rows []int
		classes := 0
		for _, rc := range byClass {
			if len(rc) == 0 {
				continue
			}
			c := slices.Clone(rc)
			shuffle(c, rng)
			take := min(shots, len(c))
			rows = append(rows, c[:take]...)
			res.MinPerClass = min(res.MinPerClass, take)
			classes++
		}
		if classes < 2 {
			return res, errors.New("the train split has fewer than 2 classes")
		}
		slices.Sort(rows)
		st := NewStandardizer(ds.X, ds.D, rows)
		xs := make([]float64, len(rows)*ds.D)
		st.Apply(xs, ds.X, ds.D, rows)
		ys := pick(ds.Y, rows)
		model := func(params []float64) *Model {
			return &Model{Classes: k, Dim: ds.D, Mean: st.Mean, Scale: st.Scale, W: params[:k*ds.D], B: params[k*ds.D:]}
		}
		var best *Model
		bestC, bestMet := bestC, Metrics{}
		if len(s.Val) > 0 {
			var warm []float64
			for i, c := range cs { // strong to weak regularisation, warm-started
				params, _, err := FitStandardized(xs, len(rows), ds.D, k, ys, c, warm, opt)
				if err != nil {
					return res, err
				}
				warm = params
				met := evalModel(model(params), ds.X, ds.Y, s.Val)
				if i == 0 || met.Top1 > bestMet.Top1 || (met.Top1 == bestMet.Top1 && met.LogLoss < bestMet.LogLoss) {
					best, bestC, bestMet = model(slices.Clone(params)), c, met
				}
			}
		} else {
			params, _, err := FitStandardized(xs, len(rows), ds.D, k, ys, bestC, nil, opt)
			if err != nil {
				return res, err
			}
			best = model(params)
		}
		test := evalModel(best, ds.X, ds.Y, s.Test)
		res.Top1 = append(res.Top1, test.Top1)
		res.C = append(res.C, bestC)
		balancedAcc = append(balancedAcc, test.BalancedAcc)
	}
	var sd float64
	res.Top1Mean, sd = meanSD(res.Top1)
	res.Top1SD = jsonFloat(sd)
	res.BalancedMean, sd = meanSD(balancedAcc)
	res.BalancedSD = jsonFloat(sd)
	return res, nil
}

// meanSD returns the mean and the sample standard deviation (n − 1; NaN for one value).
func meanSD(v []float64) (float64, float64) {
	m := 0.0
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	if len(v) < 2 {
		return m, math.NaN()
	}
	ss := 0.0
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(v)-1))
}

// bootstrapTop1 resamples the test rows with replacement b times and returns the 2.5th and 97.5th
// percentiles of top-1 (linear interpolation between order statistics, numpy's default).
func bootstrapTop1(m *Model, x []float32, y []int, test []int, b int, seed uint64) [2]float64 {
	lp := make([]float64, len(test)*m.Classes)
	m.LogProbabilities(lp, x, test)
	correct := make([]bool, len(test))
	for i, r := range test {
		s := lp[i*m.Classes : (i+1)*m.Classes]
		pred := 0
		for c, v := range s {
			if v > s[pred] {
				pred = c
			}
		}
		correct[i] = pred == y[r]
	}
	return bootstrapCI(correct, b, seed)
}

// bootstrapCI is the percentile interval of the mean of correct over b resamples.
func bootstrapCI(correct []bool, b int, seed uint64) [2]float64 {
	rng := rand.NewPCG(seed, 0xb5ad4eceda1ce2a9)
	n := len(correct)
	acc := make([]float64, b)
	for i := range acc {
		hits := 0
		for range n {
			if correct[boundedUint64(rng, uint64(n))] {
				hits++
			}
		}
		acc[i] = float64(hits) / float64(n)
	}
	sort.Float64s(acc)
	return [2]float64{percentile(acc, 0.025), percentile(acc, 0.975)}
}

// percentile of sorted values at fraction q, interpolating linearly between order statistics.
func percentile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}
