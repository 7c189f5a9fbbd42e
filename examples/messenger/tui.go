package main

import (
	"context"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
)

// runTUI is replaced by the bubbletea UI; until then the plain mode serves.
func runTUI(ctx context.Context, m *im.Messenger, demo bool) error {
	return runPlain(ctx, m, stdin(), stdout())
}
