// Package attack is the shared kit of juxta's hardening tests: it builds raw
// go-libp2p hosts on loopback that speak to a juxta peer with no juxta code
// in between (the hostile peer of SECURITY.md), and measures what an attack
// costs the process: resident memory, goroutines, files, and the latency
// honest peers see meanwhile.
//
// RSS bounds do not hold under the race detector, which multiplies memory
// use; tests scale them with RSSScale or skip with SkipRSSUnderRace.
package attack
