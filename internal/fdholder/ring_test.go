package fdholder

import (
	"bytes"
	"testing"
)

// The ring keeps the last MaxOutput bytes and counts the others.
func TestRing(t *testing.T) {
	var r ring
	if !r.empty() || len(r.bytes()) != 0 {
		t.Fatal("zero ring not empty")
	}
	var all []byte
	for i := range 100 {
		p := bytes.Repeat([]byte{byte(i)}, 1000+i*37)
		r.write(p)
		all = append(all, p...)
		keep := min(len(all), MaxOutput)
		if got := r.bytes(); !bytes.Equal(got, all[len(all)-keep:]) {
			t.Fatalf("write %d: ring holds %d bytes, not the last %d", i, len(got), keep)
		}
		if r.dropped != int64(len(all)-keep) {
			t.Fatalf("write %d: dropped %d, want %d", i, r.dropped, len(all)-keep)
		}
	}
	big := bytes.Repeat([]byte("y"), MaxOutput+10)
	r.write(big)
	if got := r.bytes(); !bytes.Equal(got, big[10:]) || r.dropped != int64(len(all)+10) {
		t.Errorf("a write larger than the ring: %d bytes kept, %d dropped", len(got), r.dropped)
	}
	r.reset()
	if !r.empty() || r.buf != nil {
		t.Error("reset ring not empty")
	}
}
