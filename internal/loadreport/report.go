// Package loadreport is the JSON report of bench/loadgen, shared by the
// load generator, make bench and the integration tests that read it.
package loadreport

// Report is what loadgen prints.
type Report struct {
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failures map[string]int `json:"failures"` // kind → count
	Errors   []string       `json:"errors,omitempty"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50      float64        `json:"p50_ms"`
	P99      float64        `json:"p99_ms"`
	Max      float64        `json:"max_ms"`
}

// Failed is the number of failed requests of every kind.
func (r Report) Failed() int {
	n := 0
	for _, v := range r.Failures {
		n += v
	}
	return n
}
