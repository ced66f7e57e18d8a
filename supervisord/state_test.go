package supervisord

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The state file round-trips, and one that sockd's user alone could not
// have written is refused (it names processes sockd would signal).
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	if f, err := readState(dir); f != nil || err != nil {
		t.Fatalf("no file: %v %v", f, err)
	}
	want := stateFile{Version: stateVersion, Pid: 42, Units: map[string]unitState{
		"app.service": {Gen: 3, Procs: []procState{{Pid: 100, Start: 12345, Gen: 3, Slot: 0, Ready: true}}},
	}}
	path := filepath.Join(dir, stateFileName)
	if err := writeState(path, &want); err != nil {
		t.Fatal(err)
	}
	got, err := readState(dir)
	if err != nil || got.Pid != 42 || got.Units["app.service"].Procs[0].Start != 12345 {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(dir); err == nil || !strings.Contains(err.Error(), "not sockd's alone") {
		t.Fatalf("a world-writable state file: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte(`{"version":99,"pid":1,"units":{}}`), 0o600)
	if _, err := readState(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("another version: %v", err)
	}
	os.Remove(path)
	os.Symlink("/etc/passwd", path)
	if _, err := readState(dir); err == nil {
		t.Fatal("a symlink was read")
	}
}
