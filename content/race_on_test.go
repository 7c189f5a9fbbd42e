//go:build race

package content

// raceEnabled: the race detector slows everything several times, so tests
// log rather than assert their time bounds.
const raceEnabled = true
