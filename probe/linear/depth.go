package linear

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DefaultLayersPerBlock is the vision Perceiver's number of self-attention layers per block.
const DefaultLayersPerBlock = 6

var depthPattern = regexp.MustCompile(`^(cross|block|layer|hidden|hidden_states|decoder|logits)_?(\d*)(?:_|$)`)

// Depth places a column on the model's depth axis: cross → 0, block{b} → b·layersPerBlock (the
// model's self-attention layers per block, so that block{b} and layer{j} columns interleave),
// layer{j} / hidden{j} → j, decoder after every layer, logits after the decoder, and any other
// name after those. known is false for names that do not follow these patterns. A concatenation
// "a+b" sits at the depth of its deepest part.
func Depth(column string, layersPerBlock int) (depth float64, known bool) {
	if parts := strings.Split(column, "+"); len(parts) > 1 {
		depth, known = -1, true
		for _, p := range parts {
			d, k := Depth(p, layersPerBlock)
			depth, known = max(depth, d), known && k
		}
		return depth, known
	}
	m := depthPattern.FindStringSubmatch(strings.ToLower(column))
	if m == nil {
		return 3e9, false
	}
	num := -1
	if m[2] != "" {
		num, _ = strconv.Atoi(m[2])
	}
	switch m[1] {
	case "cross":
		return 0, true
	case "block":
		if num >= 0 {
			return float64(num * layersPerBlock), true
		}
	case "layer", "hidden", "hidden_states":
		if num >= 0 {
			return float64(num), true
		}
	case "decoder":
		return 1e9, true
	case "logits":
		return 2e9, true
	}
	return 3e9, false
}

// SortByDepth orders column names by Depth, ties by name.
func SortByDepth(columns []string, layersPerBlock int) {
	slices.SortStableFunc(columns, func(a, b string) int {
		da, _ := Depth(a, layersPerBlock)
		db, _ := Depth(b, layersPerBlock)
		switch {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return strings.Compare(a, b)
	})
}
