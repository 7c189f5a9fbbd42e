//go:build !linux

package main

// isolate reports that network namespaces are not available here; the
// benchmark runs in place, on 127.0.0.1 only.
func isolate(enabled bool) (network string, code int, done bool) {
	if !enabled {
		return "not isolated (-netns=false); running in place, traffic to 127.0.0.1 only", 0, false
	}
	return "not isolated (network namespaces are Linux-only); running in place, traffic to 127.0.0.1 only", 0, false
}
