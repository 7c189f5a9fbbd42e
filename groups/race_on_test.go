//go:build race

package groups

// raceEnabled: the race detector slows everything 5-10 times; timing bounds
// in tests stretch accordingly.
const raceEnabled = true
