//go:build !cgo || !linux

package children

// helperInC reports whether the exec helper is the C constructor of
// helper_cgo.c; without cgo the Go helper, MaybeRunHelper, does the work.
const helperInC = false
