//go:build !unix

package api

import (
	"errors"
	"net"
	"os"
)

var errNoFDs = errors.New("passing sockets needs SCM_RIGHTS (a Unix system)")

func sendFDs(c *net.UnixConn, b []byte, files []*os.File) error { return errNoFDs }

// fdReader cannot receive descriptors here.
type fdReader struct{ c *net.UnixConn }

func newFDReader(c *net.UnixConn) *fdReader    { return &fdReader{c: c} }
func (r *fdReader) Read(p []byte) (int, error) { return r.c.Read(p) }
func (r *fdReader) take() ([]*os.File, error)  { return nil, errNoFDs }
func (r *fdReader) discard()                   {}
