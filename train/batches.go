package train

import "math/rand/v2"

// Batches cuts n items into batches of size batch, epoch after epoch.
type Batches struct {
	N, Size int
	Shuffle bool
	Seed    uint64

	epoch int   // the epoch perm belongs to, −1 before the first
	perm  []int // that epoch's order
}

// NewBatches returns the batch order of a run.
func NewBatches(n, size int, shuffle bool, seed uint64) *Batches {
	return &Batches{N: n, Size: size, Shuffle: shuffle, Seed: seed, epoch: -1}
}

// PerEpoch is the number of steps in an epoch, ceil(n/size).
func (b *Batches) PerEpoch() int { return (b.N + b.Size - 1) / b.Size }

// Step returns the item indices of update k (0-based) and its epoch: batch k mod PerEpoch of
// epoch k div PerEpoch, in source order or in that epoch's permutation. The slice is reused by
// the next call.
func (b *Batches) Step(k int) (items []int, epoch int) {
	per := b.PerEpoch()
	epoch, i := k/per, k%per
	if b.epoch != epoch || b.perm == nil {
		b.perm = b.order(epoch)
		b.epoch = epoch
	}
	lo, hi := i*b.Size, min((i+1)*b.Size, b.N)
	return b.perm[lo:hi], epoch
}

// order is epoch e's item order: 0…n−1, or a permutation drawn from (Seed, e).
func (b *Batches) order(e int) []int {
	p := make([]int, b.N)
	for i := range p {
		p[i] = i
	}
	if b.Shuffle {
		r := rand.New(rand.NewPCG(b.Seed, 0x5eed0000+uint64(e)))
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	}
	return p
}
