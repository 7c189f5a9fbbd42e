package farm_test

import (
	"context"
	"fmt"
	"os"

	"github.com/juxta-p2p/juxta/examples/taskfarm/farm"
)

// A scheduler and one provider in one process: a job of three units of a
// native task, run with quorum 1, and its results in order.
func Example() {
	dir, _ := os.MkdirTemp("", "farm-example-*")
	defer os.RemoveAll(dir)
	s, err := farm.OpenScheduler(farm.SchedulerConfig{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ex, _ := farm.NewExecutor("", nil)
	defer ex.Close()
	ex.Register("upper", func(_ context.Context, in []byte) ([]byte, error) {
		out := make([]byte, len(in))
		for i, c := range in {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out[i] = c
		}
		return out, nil
	})
	w := farm.NewWorker(ex, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { w.Run(ctx); done <- struct{}{} }()
	go func() {
		w.ServeLocal(ctx, s, "provider-1", farm.Profile{Name: "laptop", Cores: 2, Memory: 1 << 30})
		done <- struct{}{}
	}()
	defer func() { cancel(); <-done; <-done }()

	job, err := s.Submit(ctx, "client-1", farm.JobSpec{Name: "shout", Task: farm.Task{Kind: farm.KindNative, Name: "upper"}},
		[]farm.UnitSpec{{Input: []byte("peer")}, {Input: []byte("to")}, {Input: []byte("peer")}})
	if err != nil {
		panic(err)
	}
	got := map[uint32]string{}
	var after uint64
	for len(got) < 3 {
		changed := s.Changed()
		rs, _, _ := s.Results("client-1", job, after, 10)
		for _, r := range rs {
			got[r.Unit] = string(r.Output)
			after = r.Seq
		}
		if len(rs) == 0 {
			<-changed
		}
	}
	fmt.Println(got[0], got[1], got[2])
	// Output: PEER TO PEER
}
