package content

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Choking, as BitTorrent does it: every RechokeInterval the interested peers
// that gave the most (to a downloader: the fastest uploaders to it; to a
// seed: the fastest takers) are unchoked, UploadSlots of them, and every
// OptimisticInterval one more interested peer is unchoked at random, so that
// newcomers get a first piece to trade and better partners are found. Peers
// that are not interested stay unchoked: they take nothing, and can ask at
// once when they become interested.
const (
	RechokeInterval    = 10 * time.Second
	OptimisticInterval = 30 * time.Second
)

type chokeCand[K comparable] struct {
	key        K
	rate       float64
	interested bool
}

type choker[K comparable] struct {
	slots      int
	optEvery   time.Duration // OptimisticInterval; tests shorten it
	optimistic K
	hasOpt     bool
	lastOpt    time.Time
	rand       func(n int) int
}

func newChoker[K comparable](slots int) *choker[K] {
	return &choker[K]{slots: slots, optEvery: OptimisticInterval, rand: rand.IntN}
}

// round runs one rechoke round at now and returns the peers to unchoke.
func (c *choker[K]) round(now time.Time, cands []chokeCand[K]) map[K]bool {
	out := make(map[K]bool, len(cands))
	var interested []chokeCand[K]
	for _, cd := range cands {
		if cd.interested {
			interested = append(interested, cd)
		} else {
			out[cd.key] = true
		}
	}
	slices.SortStableFunc(interested, func(a, b chokeCand[K]) int {
		switch {
		case a.rate > b.rate:
			return -1
		case a.rate < b.rate:
			return 1
		}
		return 0
	})
	n := min(c.slots, len(interested))
	regular := map[K]bool{}
	for _, cd := range interested[:n] {
		regular[cd.key] = true
		out[cd.key] = true
	}
	rest := interested[n:]
	keep := c.hasOpt && now.Sub(c.lastOpt) < c.optEvery &&
		slices.ContainsFunc(rest, func(cd chokeCand[K]) bool { return cd.key == c.optimistic })
	if !keep {
		c.hasOpt = false
		if len(rest) > 0 {
			c.optimistic, c.hasOpt, c.lastOpt = rest[c.rand(len(rest))].key, true, now
		}
	}
	if c.hasOpt {
		out[c.optimistic] = true
	}
	return out
}

// clock is the time source of the service; tests script it.
type clock interface {
	Now() time.Time
	NewTicker(d time.Duration) ticker
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTicker(d time.Duration) ticker {
	return realTicker{time.NewTicker(d)}
}

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// chokeLoop re-chooses the unchoked peers of every swarm each round.
func (s *Service) chokeLoop() {
	defer s.wg.Done()
	t := s.clock.NewTicker(s.rechokeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C():
			s.mu.Lock()
			sws := make([]*swarm, 0, len(s.swarms))
			for _, sw := range s.swarms {
				sws = append(sws, sw)
			}
			s.mu.Unlock()
			for _, sw := range sws {
				sw.rechoke(now)
			}
		}
	}
}
