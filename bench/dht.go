package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/stats"
)

// The exact-DHT-query row: locate an advertisement through kad-dht provider
// records and fetch it from its provider, among 3 super-peers (DHT servers)
// and 17 edges (DHT clients).
const (
	dhtPeers          = 20
	dhtServers        = 3
	dhtQueriesPerRep  = 32
	dhtBaselinePrefix = "/juxta-bench"
	dhtExactAttr      = "sha256"
	dhtExactValue     = "9f86d081884c7d659a2feaa0c55ad015"
)

// dhtFixture is a juxta network and a raw kad-dht network of the same shape,
// built once per row. In each, one edge publishes (juxta) or provides (raw);
// the other edges take turns looking it up. A repetition reports the median
// of dhtQueriesPerRep lookups, in ms.
type dhtFixture struct {
	// sameHosts: the baseline runs on the juxta network's own hosts (their
	// kad-dht and a raw stream), not on a stock network, so that the ratio
	// is discovery's cost alone.
	sameHosts bool

	nw  *jnet
	raw []*rawDHT // servers first; none when sameHosts
	key cid.Cid   // what the raw publisher provides

	next int // the seeker that asks next, on either side
}

// setup starts both networks, publishes on each, and waits until the record
// can be found.
func (f *dhtFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	f.next = 0
	if f.nw, err = superPeerNet(ctx, dhtServers, dhtPeers-dhtServers, unlimited); err != nil {
		return nil, err
	}
	teardown := f.nw.close
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()
	ad := fileAd("iso", "debian-13.iso")
	ad.Attrs[dhtExactAttr] = dhtExactValue
	if _, err := f.nw.edges[0].d.Publish(ctx, ad); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	err = waitFor(ctx, "the provider record (juxta)", 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		res, _ := find(ctx, f.nw.edges[1], f.query())
		return len(res) > 0, nil
	})
	if err != nil {
		return nil, err
	}

	f.raw = nil
	if !f.sameHosts {
		f.raw, err = startRawDHTNet(ctx, dhtServers, dhtPeers-dhtServers)
		teardown = func() error { return errors.Join(closeRawDHTs(f.raw), f.nw.close()) }
		if err != nil {
			return nil, err
		}
	}
	sum, err := mh.Sum([]byte("juxta-bench exact DHT query"), mh.SHA2_256, -1)
	if err != nil {
		return nil, err
	}
	f.key = cid.NewCidV1(cid.Raw, sum)
	pub, seeker := f.rawNode(0), f.rawNode(1)
	pub.h.SetStreamHandler(rrProto, rrServe)
	if err := pub.d.Provide(ctx, f.key, true); err != nil {
		return nil, fmt.Errorf("provide: %w", err)
	}
	err = waitFor(ctx, "the provider record (raw)", 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		n := 0
		for range seeker.d.FindProvidersAsync(ctx, f.key, 1) {
			n++
		}
		return n > 0, nil
	})
	if err != nil {
		return nil, err
	}
	if err := settle(ctx); err != nil {
		return nil, err
	}
	return teardown, nil
}

// rawNode returns the baseline's i-th edge (client): 0 publishes.
func (f *dhtFixture) rawNode(i int) *rawDHT {
	if f.sameHosts {
		e := f.nw.edges[i] // its own host and kad-dht, not closed apart from it
		return &rawDHT{h: e.p.Libp2p().Host, d: e.p.Libp2p().Routing}
	}
	return f.raw[dhtServers+i]
}

func (f *dhtFixture) query() discovery.Query {
	return discovery.Query{Type: fileType, Attr: dhtExactAttr, Value: dhtExactValue, Sources: discovery.SourceDHT}
}

// seeker returns the index, among the edges (or clients) after the
// publisher, of the next one to look up.
func (f *dhtFixture) seeker() int {
	i := 1 + f.next%(dhtPeers-dhtServers-1)
	f.next++
	return i
}

// juxta runs Find with the exact query (DHT only) from the edges in turn,
// back to back.
func (f *dhtFixture) juxta(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pub := f.nw.edges[0].p.ID()
	lat := make([]float64, 0, dhtQueriesPerRep)
	for range dhtQueriesPerRep {
		i := f.seeker()
		start := time.Now()
		res, err := find(ctx, f.nw.edges[i], f.query())
		elapsed := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("edge %d: find: %w", i, err)
		}
		if len(res) != 1 || res[0].Publisher != pub {
			return 0, fmt.Errorf("edge %d: found %d advertisements, want the publisher's one", i, len(res))
		}
		lat = append(lat, ms(elapsed))
	}
	return stats.Median(lat), nil
}

// base looks the provider of the key up from the clients in turn, as juxta
// does (FindProvidersAsync drained, with discovery's default limit), then
// makes one request/response round trip to it.
func (f *dhtFixture) base(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pub := f.rawNode(0).h.ID()
	lat := make([]float64, 0, dhtQueriesPerRep)
	for range dhtQueriesPerRep {
		s := f.rawNode(f.seeker())
		start := time.Now()
		var prov lpeer.AddrInfo
		for ai := range s.d.FindProvidersAsync(ctx, f.key, discovery.DefaultLimit) {
			if ai.ID != s.h.ID() && prov.ID == "" {
				prov = ai
			}
		}
		if prov.ID != pub {
			return 0, fmt.Errorf("provider %q found, want %s", prov.ID, pub)
		}
		if len(prov.Addrs) > 0 {
			s.h.Peerstore().AddAddrs(prov.ID, prov.Addrs, time.Hour)
		}
		if err := roundTrip(ctx, s.h, prov.ID); err != nil {
			return 0, err
		}
		lat = append(lat, ms(time.Since(start)))
	}
	return stats.Median(lat), nil
}

// rawDHT is a go-libp2p host with a kad-dht and nothing of juxta.
type rawDHT struct {
	h host.Host
	d *dht.IpfsDHT
}

func (r *rawDHT) close() error { return errors.Join(r.d.Close(), r.h.Close()) }

// startRawDHT starts a default go-libp2p host on loopback with a kad-dht under
// the prefix /juxta-bench, in server or client mode, with juxta's filters
// (none: loopback addresses stay in answers), connected to bootstrap and
// bootstrapped. It returns once every bootstrap peer is in its routing table.
func startRawDHT(ctx context.Context, server bool, bootstrap []lpeer.AddrInfo) (*rawDHT, error) {
	mode := dht.ModeClient
	if server {
		mode = dht.ModeServer
	}
	var d *dht.IpfsDHT
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(loopbackBoth...),
		libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			var err error
			d, err = dht.New(h,
				dht.Mode(mode),
				dht.ProtocolPrefix(dhtBaselinePrefix),
				dht.BootstrapPeers(bootstrap...),
				dht.AddressFilter(nil),
				dht.QueryFilter(func(any, lpeer.AddrInfo) bool { return true }),
				dht.RoutingTableFilter(func(any, lpeer.ID) bool { return true }),
			)
			return d, err
		}),
	)
	if err != nil {
		if d != nil {
			d.Close()
		}
		return nil, err
	}
	r := &rawDHT{h: h, d: d}
	for _, b := range bootstrap {
		if err := h.Connect(ctx, b); err != nil {
			return nil, errors.Join(fmt.Errorf("connect to bootstrap peer: %w", err), r.close())
		}
	}
	if err := d.Bootstrap(ctx); err != nil {
		return nil, errors.Join(err, r.close())
	}
	err = waitFor(ctx, "the bootstrap peers in the routing table", 20*time.Millisecond, 10*time.Second, func() (bool, error) {
		for _, b := range bootstrap {
			if d.RoutingTable().Find(b.ID) == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, errors.Join(err, r.close())
	}
	return r, nil
}

// startRawDHTNet starts nservers DHT servers, each bootstrapped from those
// before it, and nclients clients, client i bootstrapped from server i mod
// nservers: the shape of superPeerNet. On error it returns what started, for
// the caller to close.
func startRawDHTNet(ctx context.Context, nservers, nclients int) ([]*rawDHT, error) {
	var out []*rawDHT
	var servers []lpeer.AddrInfo
	for i := range nservers + nclients {
		server := i < nservers
		boot := servers
		if !server {
			boot = []lpeer.AddrInfo{servers[(i-nservers)%nservers]}
		}
		r, err := startRawDHT(ctx, server, boot)
		if err != nil {
			return out, fmt.Errorf("raw DHT peer %d: %w", i, err)
		}
		out = append(out, r)
		if server {
			servers = append(servers, lpeer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()})
		}
	}
	return out, nil
}

func closeRawDHTs(rs []*rawDHT) error {
	var errs []error
	for i := len(rs) - 1; i >= 0; i-- {
		errs = append(errs, rs[i].close())
	}
	return errors.Join(errs...)
}
