package content

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// Providers are found, nearest first, among the caller's hints, through
// discovery (a TypeContent advertisement in the super-peers' index; taken in
// random order, so that downloads spread over the providers) and in the DHT
// (provider records for the ID's CID, re-provided every ReprovideInterval
// while the content is shared).

// Provide announces that this peer serves id, which must be stored here: it
// puts a DHT provider record at once (when the DHT knows any server) and
// keeps announcing id until Remove or Close. Add, AddBytes and Fetch do this
// already unless Config.NoAnnounce is set.
func (s *Service) Provide(ctx context.Context, id ID) error {
	info, err := s.Stat(id)
	if err != nil {
		return err
	}
	if d := s.p.Libp2p().Routing; d.RoutingTable().Size() > 0 {
		if err := d.Provide(ctx, id.CID(), true); err != nil {
			return fmt.Errorf("content: provide %s: %w", id, err)
		}
	}
	s.mu.Lock()
	_, on := s.announced[id]
	s.mu.Unlock()
	if !on {
		s.startAnnounce(id, info.Name)
	}
	return nil
}

// A provide that could not be made is tried again after provideRetry,
// doubling up to maxProvideRetry, until one holds.
const (
	provideRetry    = time.Second
	maxProvideRetry = 5 * time.Minute
)

func (s *Service) announce(id ID, name string) {
	if !s.cfg.NoAnnounce {
		s.startAnnounce(id, name)
	}
}

func (s *Service) startAnnounce(id ID, name string) {
	s.mu.Lock()
	if s.closed || s.announced[id] != nil {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.announced[id] = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if disc := s.cfg.Discovery; disc != nil {
			ad := discovery.Advertisement{Type: TypeContent, ID: id.String(),
				Attrs: map[string]string{"cid": id.String(), "name": truncName(name)}}
			pctx, pcancel := context.WithTimeout(ctx, time.Minute)
			if _, err := disc.Publish(pctx, ad); err != nil {
				s.log.Debug("content advertisement not published", "id", id, "err", err)
			}
			pcancel()
		}
		t := s.clock.NewTicker(s.cfg.ReprovideInterval)
		defer t.Stop()
		retry := time.NewTimer(time.Hour)
		defer retry.Stop()
		backoff := provideRetry
		for {
			provided := false
			if d := s.p.Libp2p().Routing; d.RoutingTable().Size() > 0 {
				pctx, pcancel := context.WithTimeout(ctx, time.Minute)
				err := d.Provide(pctx, id.CID(), true)
				pcancel()
				if provided = err == nil; !provided {
					s.log.Debug("DHT provide failed", "id", id, "err", err)
				}
			}
			// Until a provide holds (no DHT server known yet, or the network
			// is down), try again soon, not at the next reprovide in hours.
			retry.Stop()
			if provided {
				backoff = provideRetry
			} else if backoff < s.cfg.ReprovideInterval {
				retry.Reset(backoff)
				backoff = min(2*backoff, maxProvideRetry)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			case <-retry.C:
			}
		}
	}()
}

func (s *Service) unannounce(ctx context.Context, id ID) {
	s.mu.Lock()
	cancel := s.announced[id]
	delete(s.announced, id)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if disc := s.cfg.Discovery; disc != nil {
		if err := disc.Flush(ctx, TypeContent, id.String()); err != nil {
			s.log.Debug("content advertisement not withdrawn", "id", id, "err", err)
		}
	}
}

// maxIndexed bounds the providers taken from discovery's index for one
// download.
const maxIndexed = 50

// indexedProviders sends the providers discovery knows of id: this peer's
// cache, then its LAN neighbours' and super-peers' indexes, each set in random
// order, then those of discovery's DHT records as they come. It returns false
// when send did.
//
// An index answers newest first: in that order every download would open its
// MaxPeers sessions with the same newest providers, and a peer that
// republished often would be every download's first choice.
func (s *Service) indexedProviders(ctx context.Context, disc *discovery.Service, id ID, send func(peer.Addr) bool) bool {
	seen := map[peer.ID]bool{s.p.ID(): true}
	var batch []peer.Addr
	add := func(pub peer.ID) {
		if !seen[pub] {
			seen[pub] = true
			batch = append(batch, peer.Addr{ID: pub})
		}
	}
	flush := func() bool {
		rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for _, a := range batch {
			if !send(a) {
				return false
			}
		}
		batch = batch[:0]
		return true
	}
	q := discovery.Query{Type: TypeContent, Attr: "cid", Value: id.String(), Limit: maxIndexed}
	if ads, err := disc.Local(q); err == nil {
		for _, ad := range ads {
			add(ad.Publisher)
		}
	}
	if !flush() {
		return false
	}
	for _, src := range []discovery.Source{discovery.SourceLAN | discovery.SourceSuperPeers, discovery.SourceDHT} {
		q.Sources = src
		for r, err := range disc.Find(ctx, q) {
			if err != nil {
				continue
			}
			add(r.Publisher)
			if src == discovery.SourceDHT && !flush() { // found one by one: no order to undo
				return false
			}
		}
		if !flush() {
			return false
		}
	}
	return true
}

// findProviders feeds send with providers from discovery and the DHT until
// both are exhausted, ctx ends or send returns false.
func (s *Service) findProviders(ctx context.Context, id ID, send func(peer.Addr) bool) {
	self := s.p.ID()
	if disc := s.cfg.Discovery; disc != nil && !s.indexedProviders(ctx, disc, id, send) {
		return
	}
	d := s.p.Libp2p().Routing
	if d.RoutingTable().Size() == 0 {
		return
	}
	for ai := range d.FindProvidersAsync(ctx, id.CID(), 20) {
		if peer.ID(ai.ID) == self {
			continue
		}
		a := peer.Addr{ID: peer.ID(ai.ID)}
		for _, m := range ai.Addrs {
			a.Addrs = append(a.Addrs, m.String())
		}
		if !send(a) {
			return
		}
	}
}
