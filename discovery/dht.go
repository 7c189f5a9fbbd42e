package discovery

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/juxta-p2p/juxta/peer"
)

// MaxDHTValue bounds the attribute values announced in the DHT.
const MaxDHTValue = 256

// dhtKey is the provider-record key of one exact attribute value.
func dhtKey(scope, typ, attr, value string) cid.Cid {
	sum := sha256.Sum256([]byte("juxta/discovery\x00" + scope + "\x00" + typ + "\x00" + attr + "\x00" + strings.ToLower(value)))
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, h)
}

// provide announces ad's attribute values in the DHT, in the background.
func (c *core) provide(ad *Advertisement) { c.provideMany([]Advertisement{*ad}) }

// provideMany announces the attribute values of ads in the DHT, in one
// background task bounded in time.
func (c *core) provideMany(ads []Advertisement) {
	if c.cfg.NoDHT || c.closed.Load() {
		return
	}
	var keys []cid.Cid
	for i := range ads {
		for k, v := range ads[i].Attrs {
			if len(v) <= MaxDHTValue {
				keys = append(keys, dhtKey(ads[i].Scope, ads[i].Type, k, v))
			}
		}
	}
	if len(keys) == 0 {
		return
	}
	d := c.p.Libp2p().Routing
	c.mu.Lock()
	if c.closed.Load() { // checked with the Add under mu: Close cannot slip between
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, provideTimeout)
		defer cancel()
		if d.RoutingTable().Size() == 0 {
			return // no DHT server known: nobody to hold the records
		}
		for _, k := range keys {
			if err := d.Provide(ctx, k, true); err != nil {
				c.log.Debug("DHT provide failed", "err", err)
				return
			}
		}
	}()
}

// provideTimeout bounds one background round of DHT announcements.
const provideTimeout = 30 * time.Second

// dht looks the exact query up in provider records and fetches the
// advertisement from each provider as soon as the lookup finds it, while the
// lookup goes on: a query costs the lookup, plus one round trip only when the
// last provider turns up at its very end. The lookup stops once the limit is
// reached or the consumer stops.
func (f *finder) dht(ctx context.Context) bool {
	d := f.s.p.Libp2p().Routing
	if d.RoutingTable().Size() == 0 {
		return true
	}
	key := dhtKey(f.q.Scope, f.q.Type, f.q.Attr, f.q.Value)
	req := f.q.request(newQID(), false)
	req.TTL = 0
	asked := map[lpeer.ID]bool{}
	return askEach(f, ctx, SourceDHT, req, func(ctx context.Context) (<-chan lpeer.AddrInfo, func()) {
		ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
		return relay(d.FindProvidersAsync(ctx, key, f.q.Limit)), cancel
	}, func(ai lpeer.AddrInfo) (peer.ID, bool) {
		// kad-dht hands a provider on again when its first record had no
		// addresses: it is asked once.
		if peer.ID(ai.ID) == f.s.p.ID() || asked[ai.ID] {
			return "", false
		}
		asked[ai.ID] = true
		if len(ai.Addrs) > 0 && f.s.host.Network().Connectedness(ai.ID) != network.Connected {
			f.s.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		}
		return peer.ID(ai.ID), true
	})
}

// relay passes on what in sends, queueing it without bound, and closes once in
// has closed and everything was passed on. kad-dht's lookup waits for each
// provider it sends to be taken; through the relay it never waits for Find's
// consumer, whose loop body may be slow, while its own deadline runs. The
// queue is bounded by the lookup's limit.
func relay[T any](in <-chan T) <-chan T {
	out := make(chan T)
	go func() {
		defer close(out)
		var queue []T
		for in != nil || len(queue) > 0 {
			var send chan<- T
			var next T
			if len(queue) > 0 {
				send, next = out, queue[0]
			}
			select {
			case v, ok := <-in:
				if !ok {
					in = nil
					continue
				}
				queue = append(queue, v)
			case send <- next:
				var zero T
				queue[0] = zero
				queue = queue[1:]
			}
		}
	}()
	return out
}
