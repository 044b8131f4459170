//go:build tools

// Package depspin keeps the toolkit's chosen dependencies in go.mod while the packages that use them are written.
package depspin

import (
	_ "github.com/apache/arrow/go/v15/parquet/pqarrow"
	_ "github.com/nlpodyssey/safetensors"
	_ "golang.org/x/image/webp"
	_ "golang.org/x/sys/cpu"
	_ "golang.org/x/term"
	_ "gonum.org/v1/gonum/blas/blas32"
	_ "gonum.org/v1/gonum/optimize"
	_ "gonum.org/v1/plot"
)
