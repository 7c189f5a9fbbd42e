package discovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// PublishBatch publishes ads as Publish does each, in one exchange per
// super-peer per MaxPublishBatch advertisements (or MaxFrame bytes): a sharer
// with 10,000 files reaches its super-peers in seconds. Each advertisement is
// still signed, and verified by every receiver, on its own. At republish time
// only digests are sent, and only the advertisements a super-peer lacks are
// sent again in full.
//
// It fails, publishing nothing, if any advertisement is invalid; refusals by
// super-peers are handled as for Publish. The published advertisements are
// returned in order.
func (s *Service) PublishBatch(ctx context.Context, ads []Advertisement) ([]Advertisement, error) {
	return s.publishMany(ctx, ads, nil, false)
}

// PublishRenewed is Publish for an advertisement that stays valid for as
// long as this peer runs and keeps it: once half its lifetime has passed, it
// is signed again with a fresh Issued and a higher Seq and pushed like a new
// version, until Flush, a newer Publish of the same advertisement, or Close.
// Groups publish theirs so: a group is found for longer than a lifetime.
func (s *Service) PublishRenewed(ctx context.Context, ad Advertisement) (Advertisement, error) {
	out, err := s.publishMany(ctx, []Advertisement{ad}, nil, true)
	if err != nil {
		return Advertisement{}, err
	}
	return out[0], nil
}

// renewDue reports whether a renewed advertisement is past half its lifetime.
func renewDue(ad *Advertisement, now time.Time) bool {
	return !now.Before(ad.Issued.Add(ad.Lifetime / 2))
}

// renew signs p's advertisement again, with a fresh Issued and Seq, and
// pushes it, unless a newer version (Publish, Flush) replaced p meanwhile.
func (c *core) renew(ctx context.Context, p *published, now time.Time) {
	s := &Service{core: c, scope: p.ad.Scope}
	ad, raw, err := s.sign(p.ad, now)
	if err != nil {
		c.log.Debug("renewal failed", "type", p.ad.Type, "id", p.ad.ID, "err", err)
		return
	}
	k := ad.Key()
	c.mu.Lock()
	if c.published[k] != p {
		c.mu.Unlock()
		return
	}
	fresh, err := c.store.put(&entry{ad: ad, raw: raw, until: ad.ValidUntil(), local: true}, now)
	if err == nil {
		c.published[k] = &published{ad: ad, raw: raw, renew: true, next: now.Add(republishAfter(&ad))}
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("renewal failed", "type", ad.Type, "id", ad.ID, "err", err)
		return
	}
	if fresh {
		c.watch.Publish(cloneAd(ad))
	}
	c.push(ctx, raw)
	c.provideMany([]Advertisement{ad})
}

func (s *Service) publishMany(ctx context.Context, ads []Advertisement, rebuild func() Advertisement, renew bool) ([]Advertisement, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("discovery: publish: %w", net.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	pubs := make([]*published, len(ads))
	entries := make([]*entry, len(ads))
	raws := make([][]byte, len(ads))
	seen := make(map[Key]bool, len(ads))
	signed := make([]Advertisement, len(ads))
	errs := make([]error, len(ads))
	parallel(len(ads), func(i int) { signed[i], raws[i], errs[i] = s.sign(ads[i], now) })
	for i, ad := range signed {
		if err := errs[i]; err != nil {
			return nil, fmt.Errorf("discovery: publish %d of %d (%s %q): %w", i+1, len(ads), ads[i].Type, ads[i].ID, err)
		}
		if seen[ad.Key()] {
			return nil, fmt.Errorf("%w: %s %q twice in one batch", ErrInvalid, ad.Type, ad.ID)
		}
		seen[ad.Key()] = true
		pubs[i] = &published{ad: ad, raw: raws[i], rebuild: rebuild, renew: renew, next: now.Add(republishAfter(&ad))}
		entries[i] = &entry{ad: ad, raw: raws[i], until: ad.ValidUntil(), local: true}
	}
	fresh, errs := s.store.putMany(entries, now)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("discovery: publish: %w", err)
	}
	out := make([]Advertisement, len(ads))
	s.mu.Lock()
	for i, p := range pubs {
		s.published[p.ad.Key()] = p
		out[i] = cloneAd(p.ad)
	}
	s.mu.Unlock()
	for i, e := range entries {
		if fresh[i] {
			s.watch.Publish(e.advert())
		}
	}
	s.pushAll(ctx, raws)
	s.provideMany(out)
	return out, nil
}

// parallel runs f(0) … f(n-1) on every core and waits.
func parallel(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// pushAll sends raws to every connected super-peer, in batches.
func (c *core) pushAll(ctx context.Context, raws [][]byte) {
	for _, sp := range c.p.ConnectedSuperPeers() {
		if sp != c.p.ID() {
			c.pushTo(ctx, sp, raws)
		}
	}
}

// push sends raw to every connected super-peer.
func (c *core) push(ctx context.Context, raw []byte) { c.pushAll(ctx, [][]byte{raw}) }

// batches splits raws into publish batches: at most MaxPublishBatch
// advertisements and about three quarters of MaxFrame bytes each.
func batches(raws [][]byte) [][][]byte {
	var out [][][]byte
	for len(raws) > 0 {
		n, size := 0, 0
		for n < len(raws) && n < MaxPublishBatch && (n == 0 || size+len(raws[n]) <= MaxFrame*3/4) {
			size += len(raws[n]) + 4
			n++
		}
		out = append(out, raws[:n])
		raws = raws[n:]
	}
	return out
}

// pushTo publishes raws to one super-peer in batches; refusals are counted
// and logged, and tried again at the next republish.
func (c *core) pushTo(ctx context.Context, sp peer.ID, raws [][]byte) {
	for _, b := range batches(raws) {
		err := c.call(ctx, sp, request{Op: opPublish, Ads: b}, func(*response) error { return nil })
		if err != nil {
			c.remoteErr.Add(1)
			c.log.Debug("super-peer refused publish", "peer", sp, "err", err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// refreshTo asks one super-peer to extend its copies of raws by digest, then
// publishes in full those it lacks.
func (c *core) refreshTo(ctx context.Context, sp peer.ID, raws [][]byte) {
	var missing [][]byte
	for len(raws) > 0 {
		n := min(len(raws), MaxRefreshBatch)
		digests := make([][]byte, n)
		for i, raw := range raws[:n] {
			d := sha256.Sum256(raw)
			digests[i] = d[:]
		}
		var lack []int
		err := c.call(ctx, sp, request{Op: opRefresh, Digests: digests}, func(r *response) error {
			lack = append(lack, r.Missing...)
			return nil
		})
		if err != nil {
			c.remoteErr.Add(1)
			c.log.Debug("super-peer refused refresh", "peer", sp, "err", err)
			lack = lack[:0]
			for i := range n {
				lack = append(lack, i)
			}
		}
		for _, i := range lack {
			if i >= 0 && i < n {
				missing = append(missing, raws[i])
			}
		}
		raws = raws[n:]
	}
	if len(missing) > 0 {
		c.pushTo(ctx, sp, missing)
	}
}
