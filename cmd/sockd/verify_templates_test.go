package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// `sockd verify` of a directory with a socket template pair (Debian's
// uwsgi-app@) and instances made by links, in the directory and in
// sockets.target.wants, or of the instance link alone, finds nothing.
func TestVerifySocketTemplate(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"uwsgi-app@.socket": "[Unit]\nDescription=Socket for uWSGI app %i\n\n[Socket]\nListenStream=/var/run/uwsgi/%i.socket\n" +
			"SocketUser=www-data\nSocketMode=0600\n\n[Install]\nWantedBy=sockets.target\n",
		"uwsgi-app@.service": "[Unit]\nDescription=%i uWSGI app\n\n[Service]\nExecStart=/usr/bin/uwsgi --ini /etc/uwsgi/apps-available/%i.ini\n" +
			"User=www-%i\nGroup=www-data\nDynamicUser=yes\nStateDirectory=uwsgi/%i\nKillSignal=SIGQUIT\nType=notify\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("uwsgi-app@.socket", filepath.Join(dir, "uwsgi-app@cgit.socket")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sockets.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/uwsgi-app@.socket", filepath.Join(dir, "sockets.target.wants", "uwsgi-app@wiki.socket")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", dir},
		{"verify", filepath.Join(dir, "uwsgi-app@cgit.socket")},
		{"verify", filepath.Join(dir, "uwsgi-app@.socket")},
	} {
		var out, errb bytes.Buffer
		if code, err := run(args, &out, &errb); code != 0 || err != nil || out.Len() != 0 {
			t.Errorf("sockd %q: code %d, err %v, output %q", args, code, err, out.String())
		}
	}
	// Without the template service every instance says so.
	os.Remove(filepath.Join(dir, "uwsgi-app@.service"))
	var out, errb bytes.Buffer
	code, err := run([]string{"verify", dir}, &out, &errb)
	want := dir + "/uwsgi-app@.socket:1: service uwsgi-app@cgit.service not found\n" +
		dir + "/uwsgi-app@.socket:1: service uwsgi-app@wiki.service not found\n"
	if code != 1 || err != nil || out.String() != want {
		t.Errorf("code %d, err %v, output:\n%s\nwant:\n%s", code, err, out.String(), want)
	}
}
