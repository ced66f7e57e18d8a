//go:build !linux

package main

import (
	"context"
	"errors"

	"github.com/sockd/sockd/api"
)

func maybeRunHelper() {}

// exec needs children's exec helper, which is Linux's.
func (c *cli) exec(ctx context.Context, cl *api.Client, o *options) error {
	return errors.New("exec: not supported on this system (Linux only)")
}
