package probe

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tokenMeta(dtype string) TokenMeta {
	return TokenMeta{Name: "t", Layer: "block1", State: 2, DType: dtype, Shape: [3]int{0, 2, 3}, Latents: []int{1, 5},
		Model: "m", Shard: "1/1", Identity: map[string]string{"weights.sha256": "abc"}}
}

func tokenRow(i int) []float32 {
	r := make([]float32, 6)
	for j := range r {
		r[j] = float32(i*10+j) + 0.25
	}
	return r
}

func writeTokens(t *testing.T, base string, meta TokenMeta, order []int, resume bool) *TokenWriter {
	t.Helper()
	w, err := CreateTokens(base, meta, TokenWriterOptions{Resume: resume, Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range order {
		if w.Done(idOf(i)) {
			continue
		}
		if err := w.Write(int64(i), idOf(i), int64(i%3), tokenRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func idOf(i int) string { return "img" + string(rune('a'+i)) }

func checkTokens(t *testing.T, base string, n int) {
	t.Helper()
	tk, err := OpenTokens(base)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Verify(); err != nil {
		t.Fatal(err)
	}
	if tk.Rows() != n {
		t.Fatalf("%d rows, want %d", tk.Rows(), n)
	}
	row := make([]float32, 6)
	for i := 0; i < n; i++ {
		tk.Row(row, i)
		if tk.Meta.IDs[i] != idOf(i) || tk.Meta.Indices[i] != int64(i) || tk.Meta.Labels[i] != int64(i%3) || !slices.Equal(row, tokenRow(i)) {
			t.Fatalf("row %d: id %s index %d label %d values %v", i, tk.Meta.IDs[i], tk.Meta.Indices[i], tk.Meta.Labels[i], row)
		}
	}
	tok := make([]float32, 3)
	tk.Token(tok, 2, 1)
	if !slices.Equal(tok, tokenRow(2)[3:]) {
		t.Errorf("Token(2, 1) = %v", tok)
	}
}

// TestTokenWriterOrdersByIndex writes rows out of order and reads them in index order.
func TestTokenWriterOrdersByIndex(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x.tokens", "t")
	w := writeTokens(t, base, tokenMeta(TokensFloat32), []int{3, 0, 4, 1, 2}, false)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkTokens(t, base, 5)
	if _, err := os.Stat(PartialDir(base + ".bin")); err == nil {
		t.Error("the journal was left behind")
	}
	// Existing store without --resume: refused.
	if _, err := CreateTokens(base, tokenMeta(TokensFloat32), TokenWriterOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("existing store: %v", err)
	}
}

// TestTokenWriterResumesTornJournal aborts a run, tears the journal's tail (a partial row and a
// log line whose data never arrived), resumes, and gets the rows of an uninterrupted run.
func TestTokenWriterResumesTornJournal(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x.tokens", "t")
	w := writeTokens(t, base, tokenMeta(TokensFloat16), []int{0, 1, 2}, false)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	part := PartialDir(base + ".bin")
	f, _ := os.OpenFile(filepath.Join(part, "data.bin"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1, 2, 3}) // a torn row
	f.Close()
	f, _ = os.OpenFile(filepath.Join(part, "rows.log"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("3\tdeadbeef\t0\timgd\n4\t00") // a line without data, a torn line
	f.Close()
	if _, err := CreateTokens(base, tokenMeta(TokensFloat16), TokenWriterOptions{Notify: func(string) {}}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("unfinished run without resume: %v", err)
	}
	w = writeTokens(t, base, tokenMeta(TokensFloat16), []int{0, 1, 2, 3, 4}, true)
	if w.Rows() != 5 {
		t.Fatalf("%d rows after resume", w.Rows())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// float16 rounds x.25 exactly for these magnitudes.
	checkTokens(t, base, 5)
}

// TestTokenWriterCompletesFinishedStore resumes onto a finished store and adds rows.
func TestTokenWriterCompletesFinishedStore(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x.tokens", "t")
	w := writeTokens(t, base, tokenMeta(TokensFloat32), []int{1, 3}, false)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = writeTokens(t, base, tokenMeta(TokensFloat32), []int{0, 1, 2, 3, 4}, true)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkTokens(t, base, 5)
}

// TestTokenWriterRefusesAnotherRun resumes with another identity.
func TestTokenWriterRefusesAnotherRun(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x.tokens", "t")
	w := writeTokens(t, base, tokenMeta(TokensFloat32), []int{0}, false)
	w.Abort()
	other := tokenMeta(TokensFloat32)
	other.Identity = map[string]string{"weights.sha256": "xyz"}
	_, err := CreateTokens(base, other, TokenWriterOptions{Resume: true, Notify: func(string) {}})
	var rm *RunMismatchError
	if !errors.As(err, &rm) || !slices.Equal(rm.Keys, []string{"weights.sha256"}) {
		t.Errorf("another run's journal: %v", err)
	}
	// A second writer while the first holds the lock.
	w2, err := CreateTokens(filepath.Join(filepath.Dir(base), "u"), tokenMeta(TokensFloat32), TokenWriterOptions{Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Discard()
	var le *LockedError
	if _, err := CreateTokens(filepath.Join(filepath.Dir(base), "u"), tokenMeta(TokensFloat32), TokenWriterOptions{Resume: true}); !errors.As(err, &le) {
		t.Errorf("second writer: %v", err)
	}
}

// TestTokensDetectDamage flips a byte of a finished array: Verify names it; a truncated array is
// refused at open.
func TestTokensDetectDamage(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x.tokens", "t")
	w := writeTokens(t, base, tokenMeta(TokensFloat32), []int{0, 1}, false)
	w.Close()
	raw, _ := os.ReadFile(base + ".bin")
	raw[5] ^= 0x40
	os.WriteFile(base+".bin", raw, 0o644)
	tk, err := OpenTokens(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Verify(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("flipped byte: %v", err)
	}
	tk.Close()
	os.WriteFile(base+".bin", raw[:len(raw)-1], 0o644)
	if _, err := OpenTokens(base); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("truncated array: %v", err)
	}
}

// TestFloatToHalf checks the rounding against values numpy's astype(float16) gives (IEEE
// binary16, round to nearest, ties to even).
func TestFloatToHalf(t *testing.T) {
	for _, c := range []struct {
		f    float32
		bits uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00},
		{1 + 1.0/2048, 0x3c00},           // tie between 1 and 1+2^-10: to even (1)
		{1 + 3.0/2048, 0x3c02},           // tie: to even (1+2^-9)
		{5.960464477539063e-08, 0x0001},  // smallest subnormal
		{2.9802322387695312e-08, 0x0000}, // half of it: tie to even (0)
		{6.097555160522461e-05, 0x03ff},  // largest subnormal
		{float32(math.Inf(1)), 0x7c00},
		{0.1, 0x2e66}, {3.14159, 0x4248},
	} {
		if got := FloatToHalf(c.f); got != c.bits {
			t.Errorf("FloatToHalf(%v) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	if !math.IsNaN(float64(HalfToFloat(FloatToHalf(float32(math.NaN()))))) {
		t.Error("NaN does not survive")
	}
	for h := 0; h < 1<<16; h++ { // every finite half widens and narrows back to itself
		f := HalfToFloat(uint16(h))
		if !math.IsNaN(float64(f)) && FloatToHalf(f) != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, f, FloatToHalf(f))
		}
	}
}

func TestParseLatentSelection(t *testing.T) {
	got, err := ParseLatentSelection("0-511:8", 512)
	if err != nil || len(got) != 64 || got[1] != 8 || got[63] != 504 {
		t.Errorf("0-511:8 → %v, %v", got, err)
	}
	got, err = ParseLatentSelection("5,0-2,5", 8)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Errorf("5,0-2,5 → %v, %v", got, err)
	}
	for _, bad := range []string{"8", "3-1", "0-7:0", "x"} {
		if _, err := ParseLatentSelection(bad, 8); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
