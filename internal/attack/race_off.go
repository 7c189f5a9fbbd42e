//go:build !race

package attack

// Race reports whether the race detector is on.
const Race = false
