package peer

import (
	"strings"
	"testing"
)

// ShortString is for people: no libp2p "<peer.ID 12*…>" form, and distinct
// IDs stay distinct by their last characters.
func TestShortString(t *testing.T) {
	a, b := testID(t), testID(t)
	sa, sb := a.ShortString(), b.ShortString()
	if strings.Contains(sa, "peer.ID") || !strings.HasPrefix(sa, "…") || !strings.HasSuffix(a.String(), strings.TrimPrefix(sa, "…")) {
		t.Fatalf("ShortString %q of %s", sa, a)
	}
	if sa == sb {
		t.Fatalf("two IDs share the short form %q", sa)
	}
	if got := ID("").ShortString(); got != "" {
		t.Fatalf("empty ID: %q", got)
	}
}
