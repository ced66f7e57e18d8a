package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sockd/sockd/api"
)

// events follows the lifecycle events of one unit, or of all, until
// Ctrl-C (exit 0), a --timeout (exit 1), or sockd ends the stream (exit
// 1: it stopped, or dropped a reader that did not keep up).
func (c *cli) events(ctx context.Context, cl *api.Client, o *options) error {
	unit := ""
	if len(o.args) > 0 {
		unit = o.args[0]
	}
	err := cl.Events(ctx, unit, func(ev api.UnitEvent) error {
		if o.bool("json") {
			return c.printJSON(ev)
		}
		_, err := fmt.Fprintln(c.stdout, eventLine(ev))
		return err
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // Ctrl-C: the normal end of following
	}
	return err
}

// eventLine is one event as sockctl events prints it: the time, the unit
// (sockd for its own), the kind, and the fields that apply as key=value.
func eventLine(ev api.UnitEvent) string {
	unit := ev.Unit
	if unit == "" {
		unit = "sockd"
	}
	f := []string{ev.Time.Local().Format("2006-01-02 15:04:05.000"), unit, ev.Kind}
	add := func(k, v string) {
		if v != "" {
			f = append(f, k+"="+v)
		}
	}
	num := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	add("phase", ev.Phase)
	add("pid", num(int64(ev.Pid)))
	add("gen", num(int64(ev.Gen)))
	if ev.Code != nil {
		add("code", strconv.Itoa(*ev.Code))
	}
	add("signal", ev.Signal)
	add("result", ev.Result)
	add("outcome", ev.Outcome)
	add("ms", num(ev.Millis))
	add("socket", ev.Socket)
	add("listen", ev.Listen)
	if ev.File != "" && ev.Kind != api.EventLoadError { // a load error's message names its file and line
		add("file", ev.File+":"+strconv.Itoa(ev.Line))
	}
	if ev.Message != "" {
		f = append(f, strconv.Quote(ev.Message))
	}
	return strings.Join(f, " ")
}
