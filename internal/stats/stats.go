package stats

import (
	"math"
	"slices"
)

// Number is what the statistics take: integers (time.Duration too) and floats.
type Number interface {
	~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64 | ~float32 | ~float64
}

// Median is the middle value of xs, or the mean of the two middle values when
// there is an even number of them; 0 for none.
func Median[T Number](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return s[len(s)/2-1] + (s[len(s)/2]-s[len(s)/2-1])/2
}

// Percentile is the nearest-rank p-th percentile of xs (0 < p ≤ 100): the
// smallest value that at least p percent of xs are not above. 0 for none.
func Percentile[T Number](xs []T, p float64) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
