//go:build cgo && linux

package children

/*
#include <features.h>
#ifdef __GLIBC__
#define SOCKD_EXEC_IN_C 1
#else
#define SOCKD_EXEC_IN_C 0
#endif
*/
import "C"

// helperInC reports whether the exec helper is the C constructor of
// helper_cgo.c, which runs before the Go runtime starts (glibc passes a
// constructor the argument vector; other C libraries do not).
const helperInC = C.SOCKD_EXEC_IN_C == 1
