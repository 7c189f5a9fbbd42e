package stats_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/internal/stats"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.in)
		if got := stats.Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("Median changed its input: %v", in)
		}
	}
	if got := stats.Median([]time.Duration{time.Second, 3 * time.Second}); got != 2*time.Second {
		t.Errorf("Median of durations: %v", got)
	}
	// No overflow on the mean of two large values.
	if got := stats.Median([]int64{1<<62 + 2, 1<<62 + 4}); got != 1<<62+3 {
		t.Errorf("Median of large values: %v", got)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted
	}
	for _, tc := range []struct {
		p    float64
		want int
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}, {0.5, 1}, {150, 100}} {
		if got := stats.Percentile(hundred, tc.p); got != tc.want {
			t.Errorf("Percentile(1…100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if hundred[0] != 100 {
		t.Error("Percentile sorted its input")
	}
	if got := stats.Percentile([]float64{}, 99); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := stats.Percentile([]time.Duration{3, 1, 2}, 99); got != 3 {
		t.Errorf("p99 of three: %v", got)
	}
}

func Example() {
	rtts := []time.Duration{12 * time.Millisecond, 9 * time.Millisecond, 30 * time.Millisecond, 10 * time.Millisecond}
	fmt.Println("median", stats.Median(rtts))
	fmt.Println("p99", stats.Percentile(rtts, 99))
	// Output:
	// median 11ms
	// p99 30ms
}
