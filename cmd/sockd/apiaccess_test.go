package main

import (
	"flag"
	"io"
	"reflect"
	"testing"

	"github.com/sockd/sockd/api"
)

func TestAPIAccessFlags(t *testing.T) {
	tests := []struct {
		args []string
		mode string
		want apiSocket
	}{
		{nil, "", apiSocket{mode: 0o600, gid: -1}},
		{[]string{"--api-group", "4242"}, "", apiSocket{mode: 0o660, gid: 4242, access: api.Access{Groups: []int{4242}}}},
		{[]string{"--api-group=root", "--api-admin-group", "10,11", "--api-admin-group=12", "--api-admin-uid", "root,1000"}, "0640",
			apiSocket{mode: 0o640, gid: 0, access: api.Access{Groups: []int{0}, AdminGroups: []int{10, 11, 12}, AdminUIDs: []int{0, 1000}}}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := addAPIAccessFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		got, err := f.resolve(tt.mode)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q %q: %+v, %v; want %+v", tt.args, tt.mode, got, err, tt.want)
		}
	}
	for _, args := range [][]string{{"--api-group", "no-such-group-here"}, {"--api-admin-uid", "no-such-user-here"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := addAPIAccessFlags(fs)
		fs.Parse(args)
		if _, err := f.resolve(""); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if _, err := (&apiAccessFlags{}).resolve("0x"); err == nil {
		t.Error("bad mode: no error")
	}
}
