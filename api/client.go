package api

import (
	"context"
	"net"
)

// Client talks to sockd's API. Its zero value dials DefaultPath.
type Client struct {
	// Path is the socket path; "" means $SOCKD_API, else DefaultPath.
	Path string
	// Dial, if set, replaces dialing Path.
	Dial func(ctx context.Context) (net.Conn, error)
}

// DefaultPath is where sockd listens when neither --api nor SOCKD_API say.
const DefaultPath = "/run/sockd/api.sock"

func (c *Client) List(ctx context.Context) ([]UnitStatus, error) { panic("not implemented") }
func (c *Client) Status(ctx context.Context, unit string) (UnitStatus, error) {
	panic("not implemented")
}
func (c *Client) Start(ctx context.Context, unit string) error { panic("not implemented") }
func (c *Client) Stop(ctx context.Context, unit string) error  { panic("not implemented") }
func (c *Client) Restart(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error) {
	panic("not implemented")
}
func (c *Client) ReloadApp(ctx context.Context, unit string) error { panic("not implemented") }
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) { panic("not implemented") }
func (c *Client) Logs(ctx context.Context, unit string, n int) ([]LogLine, error) {
	panic("not implemented")
}
