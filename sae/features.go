package sae

import (
	"container/heap"
	"slices"
)

// Example is one sample that activates a dictionary entry: unit (image) Unit, sample Sample
// (unit·PerUnit + its latent's position), activation Value.
type Example struct {
	Unit   int     `json:"unit"`
	Sample int     `json:"sample"`
	Value  float32 `json:"value"`
}

// Feature summarises one dictionary entry over a data set.
type Feature struct {
	Index     int       `json:"index"`
	Frequency float64   `json:"frequency"`       // fraction of samples on which it fires (value > 0)
	MeanValue float64   `json:"mean_activation"` // mean value over the samples on which it fires
	Top       []Example `json:"top"`             // the largest activations, largest first (ties: earlier sample)
}

// Summary is a data set read through an autoencoder: each entry's feature, and per sample its L0
// and its error ‖x − x̂‖² over the data's mean squared deviation (fvu_row).
type Summary struct {
	Features []Feature
	L0       []int32
	FVURow   []float64
	FVU      float64
	// TruncatedFVU[j-1] is the FVU when each code keeps only its j largest entries (j = 1…K):
	// the trade-off between L0 and reconstruction along one trained dictionary.
	TruncatedFVU []float64
}

// exampleHeap is a min-heap on (value, then later sample first), holding the best n.
type exampleHeap []Example

func (h exampleHeap) Len() int { return len(h) }
func (h exampleHeap) Less(a, b int) bool {
	if h[a].Value != h[b].Value {
		return h[a].Value < h[b].Value
	}
	return h[a].Sample > h[b].Sample
}
func (h exampleHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *exampleHeap) Push(x any)   { *h = append(*h, x.(Example)) }
func (h *exampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Summarize encodes every sample of data and collects each entry's frequency, mean activation and
// top examples (at most top per entry).
func Summarize(s *SAE, data Data, top int) *Summary {
	n := data.Units() * data.PerUnit()
	d, k, p := s.D, s.K, data.PerUnit()
	count := make([]int64, s.M)
	sum := make([]float64, s.M)
	heaps := make([]exampleHeap, s.M)
	out := &Summary{L0: make([]int32, n), FVURow: make([]float64, n)}
	mean := make([]float64, d)
	buf := make([]float32, d)
	for i := 0; i < n; i++ {
		data.Read(buf, i)
		for c, v := range buf {
			mean[c] += float64(v)
		}
	}
	for c := range mean {
		mean[c] /= float64(n)
	}
	var sst, sse float64
	trunc := make([]float64, k)
	part := make([]float32, d)
	const chunk = 4096
	x, xh := make([]float32, chunk*d), make([]float32, chunk*d)
	idx, val := make([]int32, chunk*k), make([]float32, chunk*k)
	for lo := 0; lo < n; lo += chunk {
		c := min(n, lo+chunk) - lo
		for r := 0; r < c; r++ {
			data.Read(x[r*d:(r+1)*d], lo+r)
		}
		s.Encode(idx, val, x[:c*d], c)
		s.Decode(xh, idx, val, c)
		for r := 0; r < c; r++ {
			smp := lo + r
			var e float64
			for i := 0; i < d; i++ {
				v := float64(x[r*d+i])
				dv := v - float64(xh[r*d+i])
				e += dv * dv
				dm := v - mean[i]
				sst += dm * dm
			}
			sse += e
			out.FVURow[smp] = e
			// Errors of the truncated codes: add the entries one at a time, largest first.
			copy(part, s.BDec)
			for j := 0; j < k; j++ {
				if v := val[r*k+j]; v > 0 {
					axpy(part, v, s.Dict[int(idx[r*k+j])*d:])
				}
				var ej float64
				for i := 0; i < d; i++ {
					dv := float64(x[r*d+i]) - float64(part[i])
					ej += dv * dv
				}
				trunc[j] += ej
			}
			for j := 0; j < k; j++ {
				v := val[r*k+j]
				if v <= 0 {
					continue
				}
				out.L0[smp]++
				f := idx[r*k+j]
				count[f]++
				sum[f] += float64(v)
				ex := Example{Unit: smp / p, Sample: smp, Value: v}
				h := &heaps[f]
				if h.Len() < top {
					heap.Push(h, ex)
				} else if top > 0 && (v > (*h)[0].Value) {
					(*h)[0] = ex
					heap.Fix(h, 0)
				}
			}
		}
	}
	scale := float64(n) / sst
	for i := range out.FVURow {
		out.FVURow[i] *= scale
	}
	out.FVU = sse / sst
	out.TruncatedFVU = make([]float64, k)
	for j := range trunc {
		out.TruncatedFVU[j] = trunc[j] / sst
	}
	out.Features = make([]Feature, s.M)
	for f := range out.Features {
		ft := Feature{Index: f, Frequency: float64(count[f]) / float64(n)}
		if count[f] > 0 {
			ft.MeanValue = sum[f] / float64(count[f])
		}
		ft.Top = slices.Clone([]Example(heaps[f]))
		slices.SortFunc(ft.Top, func(a, b Example) int {
			switch {
			case a.Value > b.Value:
				return -1
			case a.Value < b.Value:
				return 1
			}
			return a.Sample - b.Sample
		})
		out.Features[f] = ft
	}
	return out
}

// ByFrequency returns the features ordered by frequency, most frequent first (ties: lower index).
func (s *Summary) ByFrequency() []Feature {
	f := slices.Clone(s.Features)
	slices.SortStableFunc(f, func(a, b Feature) int {
		switch {
		case a.Frequency > b.Frequency:
			return -1
		case a.Frequency < b.Frequency:
			return 1
		}
		return 0
	})
	return f
}
