// Package cblas binds OpenBLAS's cblas_sgemm through cgo for the `openblas`
// build of package sgemm (it is empty without that tag, so the default build
// needs neither cgo nor OpenBLAS). It lives apart from sgemm because a cgo
// package cannot also hold Go assembly. Callers validate the arguments; this
// package does not.
package cblas
