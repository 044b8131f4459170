//go:build unix

package weights

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapping is a read-only view of a whole file.
type mapping struct {
	data   []byte
	mapped bool // data came from mmap and must be unmapped
}

// mapFile maps path read-only. Empty files get an empty, unmapped slice
// because mmap refuses zero lengths.
func mapFile(path string) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return &mapping{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return &mapping{data: data, mapped: true}, nil
}

func (m *mapping) close() error {
	if !m.mapped {
		return nil
	}
	m.mapped = false
	data := m.data
	m.data = nil
	return unix.Munmap(data)
}
