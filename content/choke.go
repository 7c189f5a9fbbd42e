package content

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"
)

// Choking, as BitTorrent does it: every RechokeInterval the interested peers
// that gave the most (to a downloader: the fastest uploaders to it; to a
// seed: the fastest takers) are unchoked, UploadSlots of them, and every
// OptimisticInterval one more interested peer is unchoked at random, so that
// newcomers get a first piece to trade and better partners are found. Peers
// that are not interested stay unchoked only when they rank above the last
// unchoked interested one (see round).
const (
	RechokeInterval    = 10 * time.Second
	OptimisticInterval = 30 * time.Second
)

type chokeCand[K comparable] struct {
	key        K
	tier       int // ranks before rate: a seed's peers that gave to it
	rate       float64
	given      int64 // bytes the peer gave us in all: breaks ties of rate
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
//
// As in BitTorrent, the candidates are ranked by what they gave (rate, then
// bytes in all), and unchoked down the ranking until UploadSlots interested
// ones are; a peer that is not interested is unchoked only when it ranks
// above the last of those, so that it can ask at once when it becomes
// interested without having earned less than the peers it would displace
// (the next round chokes the worst again). The rest are choked, and one
// interested peer among them holds the optimistic unchoke.
func (c *choker[K]) round(now time.Time, cands []chokeCand[K]) map[K]bool {
	out := make(map[K]bool, len(cands))
	ranked := slices.Clone(cands)
	slices.SortStableFunc(ranked, func(a, b chokeCand[K]) int {
		switch {
		case a.tier != b.tier:
			return cmp.Compare(b.tier, a.tier)
		case a.rate > b.rate:
			return -1
		case a.rate < b.rate:
			return 1
		}
		// Equal rates (most often none, between rounds with no whole
		// piece): the peer that gave more in all comes first, so one that
		// never gave anything gets a regular slot only when no peer that
		// did wants it, and otherwise waits for the optimistic one.
		return cmp.Compare(b.given, a.given)
	})
	regular, cut := 0, len(ranked)
	for i, cd := range ranked {
		if regular == c.slots {
			cut = i
			break
		}
		out[cd.key] = true
		if cd.interested {
			regular++
		}
	}
	var rest []chokeCand[K]
	for _, cd := range ranked[cut:] {
		if cd.interested {
			rest = append(rest, cd)
		}
	}
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
