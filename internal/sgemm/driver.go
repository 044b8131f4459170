package sgemm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Cache blocking (Zen 4 here: 32 KB L1d, 1 MB L2 per core). The loop over
// column panels of B is innermost: one mr×kc micro-panel of A is reused
// against every nr-column panel of the packed kc×nc block of B. A deep kc
// halves or quarters the passes over C (each one a read and a write of the
// whole tile from L2/L3), which mattered more than keeping the panels in L1
// or L2: the hardware prefetchers stream packed panels from L2/L3 at full
// kernel speed (measured: the kernel on 184 KB of panels, kc = 1024, runs as
// fast as on 11 KB, kc = 64, within 1%).
// Measured on the model's shapes, interleaving candidates in one process:
// kc = 1024 beat 256 by 4–7% on the 512×1024×1024 and 4096×1024×1024
// products at two threads and was equal or better on the others.
//
// Intel cores do not stream panels from L2 that well: on a Sapphire Rapids
// Xeon (48 KB L1d, 2 MB L2) the 512×1024×1024 product at two threads runs at
// 290–300 GFLOPS with kc = 256 to 512 and 225–228 with kc = 1024 (every mc
// tried), so Intel CPUs get kc = 256 (kcIntel).
const (
	kcTargetConst = 1024
	kcIntel       = 256
	mcPanelsConst = 8   // mc = mcPanels·mr
	ncTargetConst = 512 // rounded down to a multiple of nr
)

// kcTarget, mcPanels and ncTarget are variables only so that tests can shrink them.
var kcTarget, mcPanels, ncTarget = defaultKC(), mcPanelsConst, ncTargetConst

// defaultKC is the depth of the K blocks for this CPU (see above).
func defaultKC() int {
	if cpuVendor() == "GenuineIntel" {
		return kcIntel
	}
	return kcTargetConst
}

// Products with fewer multiply-adds than this run on the calling goroutine:
// waking another goroutine costs more than it saves. A variable so that tests
// can exercise the parallel paths on small matrices.
var parallelMinMACs = 1 << 21

// operands describes one Gemm call.
type operands struct {
	kern           *microKernel
	transA, transB bool
	alpha          float32
	a, b           []float32
	lda, ldb       int
	pb             *PackedB  // op(B) already packed, or nil
	bias           []float32 // added to every row of C, or nil
}

// workspace holds one goroutine's packing buffers; reused through wsPool.
type workspace struct {
	aRaw, bRaw, tileRaw, partRaw []float32
	keptRaw                      []float32 // beta·C held aside over several k blocks
	cvtRaw                       []float32 // bfloat16 rows before packing
}

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

// aligned returns n floats from *raw starting on a 64-byte boundary, growing
// *raw if needed, so that packed panels are loaded without line splits.
func aligned(raw *[]float32, n int) []float32 {
	if cap(*raw) < n+16 {
		*raw = make([]float32, n+16)
	}
	r := (*raw)[:cap(*raw)]
	off := int((64 - uintptr(unsafe.Pointer(&r[0]))%64) % 64 / 4)
	return r[off : off+n]
}

// blockSize splits total into about total/target equal pieces, each a
// multiple of unit, and returns the piece size.
func blockSize(total, target, unit int) int {
	nb := max(1, (total+target/2)/target)
	s := (total + nb - 1) / nb
	return (s + unit - 1) / unit * unit
}

// gemmPacked is the native implementation of Gemm with a given kernel and thread count;
// the arguments are already validated.
func gemmPacked(kern *microKernel, nthreads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(c, ldc, 0, m, 0, n, beta)
		return
	}
	op := operands{kern: kern, transA: transA, transB: transB, alpha: alpha, a: a, b: b, lda: lda, ldb: ldb}
	runSplit(op, nthreads, m, n, k, beta, c, ldc)
}

// gemmPrepacked is gemmPacked with op(B) packed beforehand, in pb's kernel layout.
// bias, if not nil, is added to every row of C.
func gemmPrepacked(nthreads, m int, alpha float32, a []float32, lda int, transA bool, pb *PackedB, bias []float32, beta float32, c []float32, ldc int) {
	n, k := pb.n, pb.k
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(c, ldc, 0, m, 0, n, beta)
		addBias(c, ldc, m, bias)
		return
	}
	op := operands{kern: pb.kern, transA: transA, alpha: alpha, a: a, lda: lda, pb: pb, bias: bias}
	runSplit(op, nthreads, m, n, k, beta, c, ldc)
}

// runSplit runs one product on up to nthreads goroutines.
func runSplit(op operands, nthreads, m, n, k int, beta float32, c []float32, ldc int) {
	kern := op.kern
	if nthreads < 1 || m*n*k < parallelMinMACs {
		nthreads = 1
	}
	if nthreads == 1 {
		w := wsPool.Get().(*workspace)
		w.run(op, 0, m, 0, n, 0, k, beta, c, ldc)
		wsPool.Put(w)
		return
	}

	// Split along the dimension that duplicates the least work: along M every
	// goroutine packs all of op(B) (k·n), along N all of op(A) (m·k), along K
	// each extra goroutine writes and then adds a private m×n partial C.
	const never = int(^uint(0) >> 1)
	costM, costN, costK := k*n, m*k, 3*m*n
	if m < 2*kern.mr {
		costM = never
	}
	if n < 2*kern.nr {
		costN = never
	}
	if k < 2*kcTarget {
		costK = never
	}
	if op.pb != nil {
		// Splitting along K would need other kc blocks than those packed.
		// costM stays k·n although B is not packed again: each goroutine
		// still streams all of it, and on 512×1024×1024 splitting along N
		// measured 3–4% faster than along M.
		costK = never
	}
	nthreads = min(nthreads, maxThreads)
	bt := batchPool.Get().(*batch)
	tasks := bt.tasks[:0]
	splitK := false
	switch {
	case costN <= costM && costN <= costK:
		chunk := roundUp((n+nthreads-1)/nthreads, kern.nr)
		for j0 := 0; j0 < n; j0 += chunk {
			tasks = append(tasks, task{i0: 0, i1: m, j0: j0, j1: min(n, j0+chunk), p0: 0, p1: k, beta: beta, c: c, ldc: ldc})
		}
	case costM <= costK:
		chunk := roundUp((m+nthreads-1)/nthreads, kern.mr)
		for i0 := 0; i0 < m; i0 += chunk {
			tasks = append(tasks, task{i0: i0, i1: min(m, i0+chunk), j0: 0, j1: n, p0: 0, p1: k, beta: beta, c: c, ldc: ldc})
		}
	default:
		splitK = true
		chunk := roundUp((k+nthreads-1)/nthreads, 16)
		for p0 := 0; p0 < k; p0 += chunk {
			tasks = append(tasks, task{i0: 0, i1: m, j0: 0, j1: n, p0: p0, p1: min(k, p0+chunk), beta: beta, c: c, ldc: ldc})
		}
	}
	for i := range tasks {
		t := &tasks[i]
		t.op, t.pending = op, &bt.pending
		t.w = wsPool.Get().(*workspace)
		if splitK && i > 0 {
			// Later k ranges go to a private partial C, added below, without the bias.
			t.beta, t.c, t.ldc = 0, aligned(&t.w.partRaw, m*n), n
			t.op.bias = nil
		}
	}
	bt.run(tasks)
	for i := range tasks {
		if splitK && i > 0 {
			part := tasks[i].c
			for r := 0; r < m; r++ {
				addTo(c[r*ldc:r*ldc+n], part[r*n:r*n+n])
			}
		}
		wsPool.Put(tasks[i].w)
		tasks[i] = task{} // drop references to the caller's matrices
	}
	batchPool.Put(bt)
}

// maxThreads bounds the goroutines one call is split over.
const maxThreads = 64

// A task is one goroutine's share of a call: C[i0:i1, j0:j1] from k range [p0, p1).
type task struct {
	op                     operands
	i0, i1, j0, j1, p0, p1 int
	beta                   float32
	c                      []float32
	ldc                    int
	w                      *workspace
	pending                *atomic.Int64 // tasks of the call still running on helpers
}

// A batch holds the tasks of one call; pooled so that calls do not allocate.
type batch struct {
	pending atomic.Int64
	tasks   [maxThreads]task
}

var batchPool = sync.Pool{New: func() any { return new(batch) }}

// Helper goroutines, started on first need and kept. A task is handed over
// only if a helper is idle at that moment; otherwise the caller runs it
// itself, so concurrent Gemm calls never oversubscribe the helpers or wait
// for each other.
//
// A parked helper waits on taskQueue (unbuffered). Waking it costs a futex
// wake-up and a steal from the caller's P: about 110 µs from hand-over to
// start, measured in the model's forward pass (its products take ~5 ms).
// So after a task a helper stays awake for spinTime, yielding its P to any
// other goroutine (runtime.Gosched), and takes the next task from spinQueue.
// spinning counts awake helpers not yet promised a task: a caller claims one
// by decrementing it, then sends on spinQueue, so a send there always has a
// helper to receive it.
var (
	taskQueue = make(chan *task)
	spinQueue = make(chan *task, maxThreads)
	spinning  atomic.Int64
	helpers   atomic.Int64
	helpersMu sync.Mutex
)

// spinTime is how long a helper stays awake after a task, waiting for the
// next: enough for back-to-back products (Q, K, V; Dense1, GELU, Dense2),
// short enough not to hold a core long after the last one.
const spinTime = 200 * time.Microsecond

func helper() {
	for t := range taskQueue {
		for t != nil {
			t.w.run(t.op, t.i0, t.i1, t.j0, t.j1, t.p0, t.p1, t.beta, t.c, t.ldc)
			t.pending.Add(-1)
			t = awaitNext()
		}
	}
}

// awaitNext keeps a helper awake for up to spinTime and returns the task a
// caller hands it meanwhile, or nil once the helper has left the spinning
// pool.
func awaitNext() *task {
	spinning.Add(1)
	deadline := time.Now().Add(spinTime)
	for {
		select {
		case t := <-spinQueue:
			return t
		default:
		}
		if time.Now().After(deadline) {
			// Leave the pool unless a caller has already claimed this
			// helper (or another spinner's place): then a task is on its way.
			for {
				n := spinning.Load()
				if n <= 0 {
					return <-spinQueue
				}
				if spinning.CompareAndSwap(n, n-1) {
					return nil
				}
			}
		}
		runtime.Gosched()
	}
}

// handOver gives t to an idle helper, spinning or parked, and reports
// whether one took it.
func handOver(t *task) bool {
	for {
		n := spinning.Load()
		if n <= 0 {
			break
		}
		if spinning.CompareAndSwap(n, n-1) {
			spinQueue <- t // never blocks: capacity maxThreads ≥ spinning helpers
			return true
		}
	}
	select {
	case taskQueue <- t:
		return true
	default:
		return false
	}
}

func ensureHelpers(n int) {
	if int(helpers.Load()) >= n {
		return
	}
	helpersMu.Lock()
	for int(helpers.Load()) < n {
		helpers.Add(1)
		go helper()
	}
	helpersMu.Unlock()
}

// run executes tasks[0] on the calling goroutine and the others on idle
// helpers where available, and returns when all are done.
func (bt *batch) run(tasks []task) {
	ensureHelpers(len(tasks) - 1)
	var inline [maxThreads]bool
	for i := 1; i < len(tasks); i++ {
		bt.pending.Add(1)
		if !handOver(&tasks[i]) {
			bt.pending.Add(-1)
			inline[i] = true
		}
	}
	for i := range tasks {
		if i == 0 || inline[i] {
			t := &tasks[i]
			t.w.run(t.op, t.i0, t.i1, t.j0, t.j1, t.p0, t.p1, t.beta, t.c, t.ldc)
		}
	}
	// The helpers are running (not queued), so the wait is at most one
	// task's time; spinning rather than parking saves a wake-up on the
	// critical path, and Gosched lets any other goroutine have this P.
	for bt.pending.Load() > 0 {
		runtime.Gosched()
	}
}

func roundUp(x, unit int) int { return (x + unit - 1) / unit * unit }

// run computes C[i0:i1, j0:j1] = alpha·op(A)[i0:i1, p0:p1]·op(B)[p0:p1, j0:j1] + bias[j0:j1] +
// beta·C[i0:i1, j0:j1], where C(i, j) is c[i·ldc+j] and the bias (op.bias, possibly nil) is
// added to every row.
func (w *workspace) run(op operands, i0, i1, j0, j1, p0, p1 int, beta float32, c []float32, ldc int) {
	kern := op.kern
	mr, nr := kern.mr, kern.nr
	kcMax := blockSize(p1-p0, kcTarget, kern.kUnit())
	if op.pb != nil {
		kcMax = op.pb.blk // p0 = 0, p1 = k: the packed blocks
	}
	mcMax := blockSize(i1-i0, mcPanels*mr, mr)
	ncMax := blockSize(j1-j0, ncTarget/nr*nr, nr)
	ap := aligned(&w.aRaw, mcMax*kcMax)
	tile := aligned(&w.tileRaw, mr*nr)

	// With several k blocks, the bias and beta·C (a residual) join only after the last block, so
	// that the result rounds as (alpha·A·B + bias) + beta·C whatever the blocking, as with one
	// block: C is kept aside, the blocks sum alpha·A·B into C, then finish adds the rest.
	if p1-p0 > kcMax && (beta != 0 || op.bias != nil) {
		var kept, bias []float32
		if beta != 0 {
			kept = aligned(&w.keptRaw, (i1-i0)*(j1-j0))
			for i := i0; i < i1; i++ {
				copy(kept[(i-i0)*(j1-j0):(i-i0+1)*(j1-j0)], c[i*ldc+j0:i*ldc+j1])
			}
		}
		if op.bias != nil {
			bias = op.bias[j0:j1]
		}
		defer finish(c, ldc, i0, i1, j0, j1, bias, beta, kept)
		beta, op.bias = 0, nil
	}
	if op.pb != nil {
		// B is packed already: pack each block of A once and run it against all of B, so that a
		// product wider than one column block does not pack A once per column block.
		for pc := p0; pc < p1; pc += kcMax {
			kc := min(kcMax, p1-pc)
			be, bias := beta, op.bias // the bias is added once, with the first k block
			if pc != p0 {
				be, bias = 1, nil
			}
			for ic := i0; ic < i1; ic += mcMax {
				mc := min(mcMax, i1-ic)
				kern.pack(ap, op.a, op.lda, !op.transA, ic, mc, pc, kc, mr, &w.cvtRaw)
				for jc := j0; jc < j1; jc += ncMax {
					nc := min(ncMax, j1-jc)
					// The first row block reads B from memory: prefetch it.
					w.macro(op, ap, op.pb.block(jc, pc, kc), tile, ic, mc, jc, nc, kc, be, bias, c, ldc, ic == i0)
				}
			}
		}
		return
	}
	bp := aligned(&w.bRaw, ncMax*kcMax)
	for jc := j0; jc < j1; jc += ncMax {
		nc := min(ncMax, j1-jc)
		for pc := p0; pc < p1; pc += kcMax {
			kc := min(kcMax, p1-pc)
			be, bias := beta, op.bias
			if pc != p0 {
				be, bias = 1, nil
			}
			kern.pack(bp, op.b, op.ldb, op.transB, jc, nc, pc, kc, nr, &w.cvtRaw)
			for ic := i0; ic < i1; ic += mcMax {
				mc := min(mcMax, i1-ic)
				kern.pack(ap, op.a, op.lda, !op.transA, ic, mc, pc, kc, mr, &w.cvtRaw)
				w.macro(op, ap, bp, tile, ic, mc, jc, nc, kc, be, bias, c, ldc, false)
			}
		}
	}
}

// macro multiplies the packed mc×kc block of A (rows ic…) by the packed kc×nc block of B (columns
// jc…) into C: C = alpha·A·B + bias + be·C. stream selects the prefetching kernel for the first
// row panel, which is the first to read this block of B.
func (w *workspace) macro(op operands, ap, bp, tile []float32, ic, mc, jc, nc, kc int, be float32, bias []float32, c []float32, ldc int, stream bool) {
	kern := op.kern
	mr, nr := kern.mr, kern.nr
	kc = kern.packedLen(kc) // panel words per row; the kernels count k in them
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		aPanel := &ap[ir*kc]
		run, full := kern.run, mr
		if stream && ir == 0 && kern.runStream != nil {
			run = kern.runStream
		}
		if rows <= kern.shortRows {
			run, full = kern.runShort, kern.shortRows
		}
		for jr := 0; jr < nc; jr += nr {
			cols := min(nr, nc-jr)
			bPanel := &bp[jr*kc]
			ci := (ic+ir)*ldc + jc + jr
			var biasPanel *float32
			if bias != nil {
				biasPanel = &bias[jc+jr]
			}
			if rows == full && cols == nr {
				run(kc, aPanel, bPanel, &c[ci], ldc, op.alpha, be, biasPanel)
				continue
			}
			// Edge tile: compute the full block aside, keep the part inside C.
			run(kc, aPanel, bPanel, &tile[0], nr, op.alpha, 0, nil)
			for i := 0; i < rows; i++ {
				dst := c[ci+i*ldc : ci+i*ldc+cols]
				src := tile[i*nr : i*nr+cols]
				if bias != nil {
					b := bias[jc+jr : jc+jr+cols]
					for j := range src {
						src[j] += b[j]
					}
				}
				if be == 0 {
					copy(dst, src)
				} else {
					for j, v := range src {
						dst[j] = be*dst[j] + v
					}
				}
			}
		}
	}
}

// finish sets C = fma(beta, kept, C + bias) on C[i0:i1, j0:j1] (kept row-major, j1−j0 wide; nil
// when beta is 0; bias nil or j1−j0 values), rounding as the kernels' epilogue does: the bias add,
// then one rounding for beta·kept + that.
func finish(c []float32, ldc, i0, i1, j0, j1 int, bias []float32, beta float32, kept []float32) {
	n := j1 - j0
	for i := i0; i < i1; i++ {
		row := c[i*ldc+j0 : i*ldc+j1]
		if bias != nil {
			for j, b := range bias {
				row[j] += b
			}
		}
		if kept == nil {
			continue
		}
		k := kept[(i-i0)*n : (i-i0+1)*n]
		if beta == 1 {
			for j, v := range k {
				row[j] += v // one rounding, as fma(1, v, row[j])
			}
			continue
		}
		for j, v := range k {
			row[j] = fma32(beta, v, row[j])
		}
	}
}

// scaleC sets C[i0:i1, j0:j1] to beta·C, writing zeros without reading C when beta == 0.
func scaleC(c []float32, ldc, i0, i1, j0, j1 int, beta float32) {
	if beta == 1 {
		return
	}
	for i := i0; i < i1; i++ {
		row := c[i*ldc+j0 : i*ldc+j1]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// addBias adds bias (nil, or one value per column) to each of the m rows of C.
func addBias(c []float32, ldc, m int, bias []float32) {
	if bias == nil {
		return
	}
	for i := 0; i < m; i++ {
		addTo(c[i*ldc:i*ldc+len(bias)], bias)
	}
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
