package children

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readLines runs a lineReader with fn over a pipe that write feeds, until
// end of file.
func readLines(t *testing.T, fn func(string), write func(w *os.File)) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &lineReader{f: pr, fn: fn, done: make(chan struct{})}
	live.Add(1)
	go r.run()
	write(pw)
	pw.Close()
	<-r.done
}

func TestLineReaderPieces(t *testing.T) {
	long := strings.Repeat("y", 3*MaxLine+5)
	var got []string
	readLines(t, func(l string) {
		if len(l) > 10 {
			l = l[:1] + "*" + strconv.Itoa(len(l))
		}
		got = append(got, l)
	}, func(w *os.File) {
		// Written in odd pieces, so that lines straddle reads.
		data := "a\n\n" + strings.Repeat("x", MaxLine) + "\nb\n" + long + "\n" + long
		for len(data) > 0 {
			k := min(len(data), 7777)
			w.WriteString(data[:k])
			data = data[k:]
		}
	})
	y := "y*" + strconv.Itoa(MaxLine)
	want := []string{"a", "", "x*" + strconv.Itoa(MaxLine), "b", y, y, y, "yyyyy", y, y, y, "yyyyy"}
	if !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

// A reader of short lines allocates a small buffer, not MaxLine.
func TestLineReaderMemory(t *testing.T) {
	var before, after runtime.MemStats
	lines := 0
	runtime.GC()
	runtime.ReadMemStats(&before)
	readLines(t, func(string) { lines++ }, func(w *os.File) {
		for range 100 {
			w.WriteString(strings.Repeat("hello\n", 10))
		}
	})
	runtime.ReadMemStats(&after)
	if lines != 1000 {
		t.Fatalf("%d lines", lines)
	}
	// 1000 strings of 5 bytes (8 allocated each), the buffer (4 KiB),
	// the pipe and the goroutine: far less than MaxLine.
	if d := after.TotalAlloc - before.TotalAlloc; d > MaxLine/2 {
		t.Errorf("reading 1000 short lines allocated %d bytes", d)
	}
}
