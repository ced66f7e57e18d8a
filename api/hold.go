package api

// The hold route: POST /v1/units/{name}/hold lends a unit's listening
// sockets to the client, which receives them over the API connection
// itself (SCM_RIGHTS) and keeps that connection open for as long as it
// serves them. Its end, however the client ends (exit, kill, crash), is
// the release: no lease to renew, nothing to forget.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// HoldInfo is the JSON body of the answer to POST
// /v1/units/{name}/hold. The sockets come in the same message as the
// answer's first bytes, as SCM_RIGHTS, one per name and in that order.
type HoldInfo struct {
	Unit    string   `json:"unit"`     // "app.service"
	FDNames []string `json:"fd_names"` // LISTEN_FDNAMES, one per socket
}

// MaxHoldFDs is the most sockets one hold passes: the kernel's limit of
// descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
const MaxHoldFDs = 253

// hold serves POST /v1/units/{name}/hold. Once the Backend has lent the
// sockets, the handler takes the connection over (http.Hijacker), sends
// the answer with the sockets attached, and waits for the client to hang
// up, for sockd to end the hold (then it shuts its side for writing, the
// client's cue, and still waits for the client), or for the server to
// shut down; then it releases the hold.
func (s *Server) hold(w http.ResponseWriter, r *http.Request) error {
	name, err := unitName(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		return err
	}
	if _, ok := connOf(r.Context()).(*net.UnixConn); !ok {
		return fmt.Errorf("hold %s: sockets pass over a Unix socket connection only: %w", name, ErrInvalid)
	}
	peer, _ := PeerFromContext(r.Context())
	h, err := s.Backend.Hold(r.Context(), name, peer)
	if err != nil {
		return err
	}
	if n := len(h.Files); n > MaxHoldFDs || n != len(h.Names) {
		closeFiles(h.Files)
		h.Release()
		return fmt.Errorf("hold %s: %d sockets (%d names): at most %d pass in one message", name, n, len(h.Names), MaxHoldFDs)
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		closeFiles(h.Files)
		h.Release()
		return fmt.Errorf("hold %s: %w", name, err)
	}
	uc := conn.(*net.UnixConn) // the connection connOf saw
	body, _ := json.Marshal(HoldInfo{Unit: h.Unit, FDNames: h.Names})
	msg := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s\n", len(body)+1, body)
	err = sendFDs(uc, []byte(msg), h.Files)
	closeFiles(h.Files) // the client has its own now
	if err != nil {
		uc.Close()
		h.Release()
		s.logError(r, fmt.Errorf("hold %s: send the sockets: %w", name, err))
		return nil
	}
	logPeer(s.Log.Info().Str("unit", h.Unit).Strs("fd_names", h.Names), r.Context()).Msg("hold: sockets lent")

	gone := make(chan struct{})
	go func() {
		// Nothing more should come: wait for the end. (On the conn
		// itself: a read through net/http's buffer would cancel the
		// request's context at the end, which means the server's
		// shutdown here.)
		io.Copy(io.Discard, uc)
		close(gone)
	}()
	why := "the holder closed the connection"
	select {
	case <-gone:
	case <-h.Ended:
		// sockd ends the hold: tell the client, and let it stop
		// serving before the sockets are sockd's again.
		why = "sockd ended the hold"
		uc.CloseWrite()
		select {
		case <-gone:
		case <-r.Context().Done():
			why = "sockd ended the hold; the API server shut down"
		}
	case <-r.Context().Done():
		why = "the API server shut down"
	}
	uc.Close()
	<-gone
	h.Release()
	logPeer(s.Log.Info().Str("unit", h.Unit).Str("why", why), r.Context()).Msg("hold: released")
	return nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// Hold asks sockd to lend unit's listening sockets (POST
// /v1/units/{name}/hold) to the caller, which serves them in place of
// the unit's service (sockctl exec). It returns them, close-on-exec,
// with their names and the unit's full name.
//
// ctx bounds the request alone. The hold lasts until Release, which
// closes the connection the sockets came over: that close is what ends
// the hold in sockd, so a holder that exits or is killed releases it
// too. Ended is closed when that connection ends otherwise, which is
// sockd ending the hold (the unit removed, its sockets changed, sockd
// stopping): the holder should stop serving, then Release.
//
// Errors are those of every call (*Error, *UnreachableError); a Dial
// that makes no Unix socket connection cannot carry sockets.
func (c *Client) Hold(ctx context.Context, unit string) (*Hold, error) {
	p, err := unitPath(unit, "hold")
	if err != nil {
		return nil, err
	}
	conn, err := c.dial(ctx, "", "")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Hold, error) {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("sockd api POST %s: %w", p, err)
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fail(fmt.Errorf("sockets pass over a Unix socket connection only, not %s", conn.LocalAddr().Network()))
	}
	// ctx's end interrupts the exchange; after it, nothing does.
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Now()) })
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://sockd"+p, nil)
	if err != nil {
		stop()
		return fail(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Close = true // one request per connection, as every call
	fr := newFDReader(uc)
	h, err := readHold(uc, fr, req)
	if !stop() && err == nil { // ctx ended just as the answer came
		closeFiles(h.Files)
		h.Release()
		err = ctx.Err()
	}
	if err != nil {
		fr.discard()
		var ae *Error
		if errors.As(err, &ae) {
			conn.Close()
			return nil, err
		}
		return fail(err)
	}
	uc.SetDeadline(time.Time{})
	return h, nil
}

// readHold sends req on uc and reads the answer through fr, which keeps
// the descriptors that come with it.
func readHold(uc *net.UnixConn, fr *fdReader, req *http.Request) (*Hold, error) {
	if err := req.Write(uc); err != nil {
		return nil, err
	}
	br := bufio.NewReader(fr)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := readError(resp)
		resp.Body.Close()
		return nil, err
	}
	var info HoldInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&info); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	files, err := fr.take()
	if err != nil {
		return nil, err
	}
	if len(files) != len(info.FDNames) {
		closeFiles(files)
		return nil, fmt.Errorf("%d sockets came for %d names %q", len(files), len(info.FDNames), info.FDNames)
	}
	ended := make(chan struct{})
	go func() {
		// The server sends nothing more: the read ends when sockd
		// ends the hold or Release closes the connection.
		io.Copy(io.Discard, br)
		close(ended)
	}()
	release := sync.OnceFunc(func() { uc.Close() })
	return &Hold{Unit: info.Unit, Files: files, Names: info.FDNames, Ended: ended, Release: release}, nil
}
