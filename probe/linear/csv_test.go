package linear

import (
	"bytes"
	"testing"
)

// Expected text written by hand from the CSV rules (RFC 4180 quoting by encoding/csv, shortest
// float32 decimals).
func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	err := WriteCSV(&b,
		CSVColumn{Name: "id", Strings: []string{"a", "b,c"}},
		CSVColumn{Name: "label", Ints: []int64{3, -1}},
		CSVColumn{Name: "cross_mean", Floats: []float32{0.1, 2, -1e-7, 3.5}, Width: 2},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := "id,label,cross_mean_0,cross_mean_1\na,3,0.1,2\n\"b,c\",-1,-1e-07,3.5\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteCSVRowMismatch(t *testing.T) {
	var b bytes.Buffer
	err := WriteCSV(&b, CSVColumn{Name: "id", Strings: []string{"a"}}, CSVColumn{Name: "x", Floats: []float32{1, 2}})
	if err == nil {
		t.Fatal("want an error for columns of different lengths")
	}
}
