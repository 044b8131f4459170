//go:build !unix

package weights

import "os"

// mapping holds a whole file; without mmap it is simply read into memory.
type mapping struct {
	data []byte
}

func mapFile(path string) (*mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &mapping{data: data}, nil
}

func (m *mapping) close() error {
	m.data = nil
	return nil
}
