package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestSuperPeerListenFlagsAgree(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"superpeer", "-dir", t.TempDir(), "-port", "0", "-loopback", "-listen", "10.9.9.9"}, &out)
	if err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Fatalf("-loopback with another -listen: %v", err)
	}
}
