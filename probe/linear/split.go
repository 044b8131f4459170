package linear

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strings"
)

// Splits holds row indices of the three parts of a data set, each in increasing order.
type Splits struct {
	Train, Val, Test []int
}

// ParseSplit maps a split-column value to "train", "val" or "test".
func ParseSplit(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "train", "training":
		return "train", nil
	case "val", "valid", "validation", "dev":
		return "val", nil
	case "test", "testing":
		return "test", nil
	}
	return "", fmt.Errorf("linear: split value %q is not train, val or test", v)
}

// SplitsFromColumn turns per-row split values into index lists.
func SplitsFromColumn(values []string) (Splits, error) {
	var s Splits
	for i, v := range values {
		p, err := ParseSplit(v)
		if err != nil {
			return Splits{}, fmt.Errorf("row %d: %w", i, err)
		}
		switch p {
		case "train":
			s.Train = append(s.Train, i)
		case "val":
			s.Val = append(s.Val, i)
		default:
			s.Test = append(s.Test, i)
		}
	}
	return s, nil
}

// StratifiedSplit assigns the rows with labels y to train, val and test: per class, the rows are
// shuffled with a PCG seeded by seed and the first round(testFrac·n_c) go to test, the next
// round(valFrac·n_c) to val, the rest to train (a class keeps at least one training row).
func StratifiedSplit(y []int, numClasses int, valFrac, testFrac float64, seed uint64) Splits {
	byClass := make([][]int, numClasses)
	for i, c := range y {
		byClass[c] = append(byClass[c], i)
	}
	rng := rand.NewPCG(seed, 0x9e3779b97f4a7c15)
	part := make([]uint8, len(y)) // 0 train, 1 val, 2 test
	for _, rows := range byClass {
		shuffle(rows, rng)
		n := len(rows)
		nTest := int(math.Round(testFrac * float64(n)))
		nVal := int(math.Round(valFrac * float64(n)))
		for nTest+nVal >= n && nTest+nVal > 0 {
			if nVal >= nTest && nVal > 0 {
				nVal--
			} else {
				nTest--
			}
		}
		for j, r := range rows {
			switch {
			case j < nTest:
				part[r] = 2
			case j < nTest+nVal:
				part[r] = 1
			}
		}
	}
	var s Splits
	for i, p := range part {
		switch p {
		case 0:
			s.Train = append(s.Train, i)
		case 1:
			s.Val = append(s.Val, i)
		default:
			s.Test = append(s.Test, i)
		}
	}
	return s
}

// StratifiedFolds assigns rows (indices into y) to k folds: per class, shuffled with a PCG seeded
// by seed, the j-th row goes to fold j mod k. It returns, per fold, the rows in increasing order.
func StratifiedFolds(rows []int, y []int, numClasses, k int, seed uint64) [][]int {
	byClass := make([][]int, numClasses)
	for _, r := range rows {
		byClass[y[r]] = append(byClass[y[r]], r)
	}
	rng := rand.NewPCG(seed, 0x2545f4914f6cdd1d)
	fold := make(map[int]int, len(rows))
	offset := 0
	for _, rc := range byClass {
		shuffle(rc, rng)
		for j, r := range rc {
			// Continue the round robin across classes so small classes do not all land in fold 0.
			fold[r] = (offset + j) % k
		}
		offset += len(rc)
	}
	folds := make([][]int, k)
	for _, r := range rows {
		folds[fold[r]] = append(folds[fold[r]], r)
	}
	return folds
}

// shuffle is Fisher–Yates driven by PCG.Uint64 only, whose stream is fixed by its definition, so
// the permutation is the same on every platform and Go version.
func shuffle(s []int, rng *rand.PCG) {
	for i := len(s) - 1; i > 0; i-- {
		j := boundedUint64(rng, uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}

// boundedUint64 draws uniformly from [0, n) by rejection (Lemire's multiply-shift).
func boundedUint64(rng *rand.PCG, n uint64) uint64 {
	for {
		hi, lo := bits.Mul64(rng.Uint64(), n)
		if lo >= n || lo >= (-n)%n {
			return hi
		}
	}
}
