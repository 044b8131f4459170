package core

import (
	"slices"
	"testing"
)

// TestEncodeThenForwardLatents checks that Encode followed by ForwardLatents computes exactly what
// Forward does (bit for bit: the same operations in the same order), for every input stage and a
// batch of two, and that ForwardLatents leaves its input alone.
func TestEncodeThenForwardLatents(t *testing.T) {
	for kind, dir := range fixtureDirs {
		t.Run(kind, func(t *testing.T) {
			m := loadFixture(t, kind)
			px := openExpectedIn(t, dir).Tensors["pixel_values"]
			n := len(px.Data)
			two := append(slices.Clone(px.Data), px.Data...)
			for i := n; i < 2*n; i++ {
				two[i] = -0.5 * two[i]
			}
			h, w := px.Shape[2], px.Shape[3]
			tr := TraceAll
			tr.Inputs, tr.EncoderAttention = false, false
			want, err := m.Forward(two, 2, h, w, tr)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := m.Encode(two, 2, h, w, Trace{})
			if err != nil {
				t.Fatal(err)
			}
			if len(enc.HiddenStates) != 1 || enc.Logits != nil {
				t.Fatalf("Encode kept %d hidden states and %d logits, want 1 and none", len(enc.HiddenStates), len(enc.Logits))
			}
			h0 := slices.Clone(enc.HiddenStates[0])
			got, err := m.ForwardLatents(enc.HiddenStates[0], 2, tr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h0, enc.HiddenStates[0]) {
				t.Error("ForwardLatents modified the hidden state it was given")
			}
			wt, gt := want.Tensors(), got.Tensors()
			if len(wt) != len(gt) {
				t.Fatalf("ForwardLatents kept %d tensors, Forward %d", len(gt), len(wt))
			}
			for i := range wt {
				if wt[i].Name != gt[i].Name || !slices.Equal(wt[i].Data, gt[i].Data) {
					t.Errorf("%s differs between Forward and Encode+ForwardLatents", wt[i].Name)
				}
			}
			if _, err := m.ForwardLatents(h0[:len(h0)-1], 2, Trace{}); err == nil {
				t.Error("ForwardLatents accepted a hidden state of the wrong size")
			}
		})
	}
}
