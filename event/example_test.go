package event_test

import (
	"context"
	"fmt"

	"github.com/juxta-p2p/juxta/event"
)

func Example() {
	bus := event.New[string]()
	defer bus.Close()
	sub := bus.Subscribe(context.Background(), 2)
	bus.Publish("first")
	bus.Publish("second")
	bus.Publish("third") // the buffer holds two: dropped for this subscriber
	sub.Cancel()
	for ev := range sub.C {
		fmt.Println(ev)
	}
	fmt.Println("dropped:", sub.Dropped())
	// Output:
	// first
	// second
	// dropped: 1
}
