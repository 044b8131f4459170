package linear

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// CSVColumn is one column group of a CSV export: exactly one of Strings, Ints or Floats is set.
// Floats holds Width values per row (row-major); a group with Width > 1 becomes the columns
// Name_0 … Name_{Width−1}.
type CSVColumn struct {
	Name    string
	Strings []string
	Ints    []int64
	Floats  []float32
	Width   int // values per row for Floats; 0 means 1
}

func (c CSVColumn) rows() (int, error) {
	set := 0
	n := 0
	if c.Strings != nil {
		set++
		n = len(c.Strings)
	}
	if c.Ints != nil {
		set++
		n = len(c.Ints)
	}
	w := max(c.Width, 1)
	if c.Floats != nil {
		set++
		if len(c.Floats)%w != 0 {
			return 0, fmt.Errorf("csv column %q: %d values is not a multiple of width %d", c.Name, len(c.Floats), w)
		}
		n = len(c.Floats) / w
	}
	if set != 1 {
		return 0, fmt.Errorf("csv column %q: set exactly one of Strings, Ints, Floats", c.Name)
	}
	return n, nil
}

// WriteCSV writes a header row and one row per sample. Floats use the shortest decimal that
// reads back to the same float32.
func WriteCSV(w io.Writer, cols ...CSVColumn) error {
	n := -1
	var header []string
	for _, c := range cols {
		rows, err := c.rows()
		if err != nil {
			return err
		}
		if n >= 0 && rows != n {
			return fmt.Errorf("csv column %q has %d rows, others have %d", c.Name, rows, n)
		}
		n = rows
		if c.Floats != nil && c.Width > 1 {
			for j := range c.Width {
				header = append(header, c.Name+"_"+strconv.Itoa(j))
			}
		} else {
			header = append(header, c.Name)
		}
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	rec := make([]string, len(header))
	for i := 0; i < n; i++ {
		rec = rec[:0]
		for _, c := range cols {
			switch {
			case c.Strings != nil:
				rec = append(rec, c.Strings[i])
			case c.Ints != nil:
				rec = append(rec, strconv.FormatInt(c.Ints[i], 10))
			default:
				wd := max(c.Width, 1)
				for _, v := range c.Floats[i*wd : (i+1)*wd] {
					rec = append(rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
				}
			}
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}
