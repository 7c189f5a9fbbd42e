package main

import (
	"bytes"
	"context"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

func TestDemoRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"path: direct", `alice heard "hi alice"`, "juxta2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
