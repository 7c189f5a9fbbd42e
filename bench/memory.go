package main

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// liveHeap collects garbage until the live heap is stable and returns it.
func liveHeap() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// idleMemory measures the live heap that -peers idle, unconnected nodes add,
// per node, in KiB. The nodes run for one second after the last one started,
// so that start-up garbage is gone and background services have settled.
func idleMemory(mk newNode) func(context.Context) (float64, error) {
	return func(ctx context.Context) (_ float64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		// Goroutines of the previous repetition's nodes may still be exiting.
		time.Sleep(200 * time.Millisecond)
		before := liveHeap()

		nodes := make([]*node, 0, *flagPeers)
		defer func() {
			for _, n := range nodes {
				err = errors.Join(err, n.close())
			}
		}()
		for range *flagPeers {
			n, err := mk(ctx, loopbackBoth)
			if err != nil {
				return 0, err
			}
			nodes = append(nodes, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		after := liveHeap()
		return (float64(after) - float64(before)) / float64(len(nodes)) / 1024, nil
	}
}
