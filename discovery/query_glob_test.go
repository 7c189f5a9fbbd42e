package discovery

import (
	"strings"
	"testing"
)

// oldGlob is the matcher before patterns were compiled once per query: the
// compiled one must agree with it everywhere.
func oldGlob(pattern, s string) bool {
	pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

func TestCompiledGlob(t *testing.T) {
	long := strings.Repeat("Ab", globBuf)
	values := []string{"", "a", "Blue Monday.mp3", "blue monday.MP3", "소리바다 노래", "CAFÉ", "straße", long, long + "Z", "aaa", "abab"}
	patterns := []string{"", "*", "**", "blue*", "*MP3", "*a*t*t*r*z*", "b*e*3", "소리*", "café", "CAF*", "a*a", "ab*ab", "*ab*", long[:10] + "*z"}
	for _, p := range patterns {
		for _, v := range values {
			if got, want := glob(p, v), oldGlob(p, v); got != want {
				t.Errorf("glob(%q, %.20q) = %v, before %v", p, v, got, want)
			}
		}
	}
	// Matching a short ASCII value, upper case included, allocates nothing.
	pat := compileGlob("*a*t*t*r*z*")
	if n := testing.AllocsPerRun(100, func() { pat.match("Attribute Value 7 number 9 with some words") }); n != 0 {
		t.Errorf("match allocates %v times per value", n)
	}
}
