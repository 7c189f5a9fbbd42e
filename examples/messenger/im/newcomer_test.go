package im

import (
	"context"
	"testing"
	"time"
)

// Issue 11: what arrives before the UI subscribes (a message fetched at start)
// was stored but never shown. The first subscriber now gets it.
func TestEventsBeforeSubscribeAreReplayed(t *testing.T) {
	a, b := open(t, "alice"), open(t, "bob")
	friends(t, a, b)
	ctx := context.Background()
	if _, err := a.Send(ctx, b.ID(), "are you there?"); err != nil {
		t.Fatal(err)
	}
	eventually(t, patience, "bob to store the message", func() bool {
		h := b.History(a.ID(), 10)
		return len(h) > 0 && h[len(h)-1].Text == "are you there?"
	})
	sub := b.Subscribe(ctx)
	defer sub.Cancel()
	for {
		select {
		case ev := <-sub.C:
			if e, ok := ev.(MessageAdded); ok && e.Message.Text == "are you there?" {
				return
			}
		case <-time.After(patience):
			t.Fatal("the message that arrived before Subscribe was not delivered to the first subscriber")
		}
	}
}
