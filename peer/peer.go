package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	lpevent "github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	lpbus "github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"

	"github.com/juxta-p2p/juxta/event"
)

// DHTProtocolPrefix keeps juxta's DHT apart from the public IPFS DHT.
const DHTProtocolPrefix = "/juxta"

// MDNSService is the mDNS service name juxta peers announce on the LAN.
const MDNSService = "_juxta._udp"

// Peer is a running juxta peer: an identity, a libp2p host wired for NAT
// traversal, and the peer routing that finds others by ID.
type Peer struct {
	cfg        Config
	log        *slog.Logger
	key        crypto.PrivKey
	host       host.Host        // never nil after New
	dht        *dht.IpfsDHT     // never nil after New
	superPeers []lpeer.AddrInfo // parsed Config.SuperPeers; read-only
	events     *event.Bus[Event]
	mdns       io.Closer               // nil when mDNS is off
	rm         network.ResourceManager // closed after the host
	lanDials   *rate.Limiter           // direct LAN dials to relayed peers' addresses

	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines; all exit on Close

	kick chan struct{} // wakes the super-peer keeper; buffered 1

	hp  *holepunch.Service             // DCUtR; nil until started, closed on Close
	oam basichost.ObservedAddrsManager // filled by go-libp2p's constructor
	// reachEmitter announced "unknown" at start (see startRelayFinder);
	// closed on Close; nil when not needed.
	reachEmitter lpevent.Emitter

	// early is the host as go-libp2p hands it to the routing constructor, for
	// callbacks that run while libp2p.New has not yet returned.
	early atomic.Pointer[host.Host]

	spCheck superPeerCheck

	mu      sync.Mutex
	reach   Reachability // guarded by mu
	paths   map[ID]Path  // guarded by mu
	relays  []ID         // guarded by mu; relays holding a reservation
	punches map[ID]int   // guarded by mu; hole-punch attempts per peer
	closed  atomic.Bool
}

// New starts a peer. A New that fails part-way closes everything it opened.
func New(ctx context.Context, cfg Config) (_ *Peer, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &Peer{
		cfg:     cfg,
		log:     cfg.Logger,
		events:  event.New[Event](),
		kick:    make(chan struct{}, 1),
		paths:   make(map[ID]Path),
		punches: make(map[ID]int),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.lanDials = rate.NewLimiter(lanDialRate, lanDialBurst)
	defer func() {
		if err != nil {
			p.shutdown()
		}
	}()

	for _, s := range cfg.SuperPeers {
		if strings.TrimSpace(s) == "" {
			continue // an unset flag or an empty list entry
		}
		a, err := ParseAddr(s)
		if err == nil && len(a.Addrs) == 0 {
			err = fmt.Errorf("%w: no address", ErrNoAddrs)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: super-peer %q: %w", ErrBadConfig, s, err)
		}
		p.superPeers = append(p.superPeers, a.addrInfo())
	}
	if p.key, err = loadOrCreateKey(cfg.Dir); err != nil {
		return nil, err
	}
	listen, err := listenAddrs(cfg)
	if err != nil {
		return nil, err
	}
	limits, err := p.limitOptions()
	if err != nil {
		return nil, err
	}
	if p.host, err = libp2p.New(append(p.options(), limits...)...); err != nil {
		return nil, fmt.Errorf("peer: start host: %w", err)
	}
	p.protectSuperPeers()
	// Listen only once the host is whole: go-libp2p leaks goroutines when its
	// own start fails on a listen error, while a whole host closes cleanly.
	if err := p.host.Network().Listen(listen...); err != nil {
		return nil, fmt.Errorf("peer: listen on %v: %w", listen, err)
	}
	if p.dht == nil {
		return nil, errors.New("peer: DHT was not constructed")
	}
	if err := p.startHolePunching(p.oam); err != nil {
		return nil, err
	}
	if err := p.startRelayFinder(); err != nil {
		return nil, err
	}
	if err := p.watch(); err != nil {
		return nil, err
	}
	if err := p.startKeepalive(); err != nil {
		return nil, fmt.Errorf("peer: keepalive: %w", err)
	}
	if cfg.Role == RoleSuperPeer {
		p.serveSuperPeer()
	}
	if err := p.dht.Bootstrap(p.ctx); err != nil {
		return nil, fmt.Errorf("peer: DHT bootstrap: %w", err)
	}
	if cfg.Role == RoleSuperPeer && cfg.Reachability == ReachabilityPublic {
		// go-libp2p starts the relay service asynchronously after the
		// reachability event; hand out a super-peer only once it relays.
		if err := p.waitProtocol(ctx, relayHop); err != nil {
			return nil, fmt.Errorf("peer: relay service did not start: %w", err)
		}
	}
	if !cfg.NoMDNS {
		svc := mdns.NewMdnsService(p.host, MDNSService, mdnsNotifee{p})
		if err := svc.Start(); err != nil {
			return nil, fmt.Errorf("peer: start mDNS: %w", err)
		}
		p.mdns = svc
	}
	for _, sp := range p.superPeers {
		p.host.Peerstore().AddAddrs(sp.ID, sp.Addrs, 24*time.Hour)
	}
	p.wg.Add(1)
	go p.keepSuperPeers()
	p.log.Info("peer started", "id", p.host.ID(), "role", cfg.Role, "addrs", p.host.Addrs())
	return p, nil
}

func listenAddrs(cfg Config) ([]ma.Multiaddr, error) {
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", cfg.Port),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", cfg.Port),
			fmt.Sprintf("/ip6/::/tcp/%d", cfg.Port),
			fmt.Sprintf("/ip6/::/udp/%d/quic-v1", cfg.Port),
		}
	}
	var out []ma.Multiaddr
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %v", ErrBadConfig, s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (p *Peer) options() []libp2p.Option {
	cfg := p.cfg
	opts := []libp2p.Option{
		libp2p.Identity(p.key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.DisableMetrics(),
		libp2p.EnableRelay(),
		libp2p.WithFxOption(fx.Populate(&p.oam)),
		libp2p.UserAgent("juxta/0"),
		libp2p.AddrsFactory(p.addrsFactory),
		libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			p.early.Store(&h)
			mode := dht.ModeClient
			if cfg.Role == RoleSuperPeer {
				mode = dht.ModeServer
			}
			d, err := dht.New(h,
				dht.Mode(mode),
				dht.ProtocolPrefix(DHTProtocolPrefix),
				dht.BootstrapPeers(p.superPeers...),
				// juxta runs on LANs and in labs: keep private and loopback
				// addresses in routing answers.
				dht.AddressFilter(nil),
				dht.QueryFilter(func(any, lpeer.AddrInfo) bool { return true }),
				dht.RoutingTableFilter(func(any, lpeer.ID) bool { return true }),
			)
			if err != nil {
				return nil, err
			}
			p.dht = d
			return d, nil
		}),
	}
	// Both security protocols stay available for stock libp2p peers; the
	// order is the one this CPU runs faster (security.go).
	opts = append(opts, securityOptions(Security().First)...)
	switch cfg.Reachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	default:
		opts = append(opts, libp2p.EnableAutoNATv2())
	}
	if cfg.Role == RoleSuperPeer {
		l := cfg.Relay.withDefaults()
		res := relay.DefaultResources()
		res.MaxReservations = l.MaxReservations
		res.MaxReservationsPerIP = l.MaxReservationsPerIP
		res.MaxCircuits = l.MaxCircuits
		res.ReservationTTL = l.ReservationTTL
		res.Limit = &relay.RelayLimit{Duration: l.ConnDuration, Data: l.ConnData}
		res.BufferSize = relayBufferSize
		opts = append(opts,
			libp2p.EnableRelayService(relay.WithResources(res)),
			libp2p.EnableNATService(),
		)
		if cfg.Reachability != ReachabilityUnknown {
			// A super-peer answers AutoNAT v2 probes even when its own
			// reachability is declared.
			opts = append(opts, libp2p.EnableAutoNATv2())
		}
	} else if len(p.superPeers) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(p.superPeers,
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			autorelay.WithBackoff(5*time.Second),
			autorelay.WithMinInterval(time.Second),
		))
	}
	if cfg.PortMapping {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts
}

const relayHop = "/libp2p/circuit/relay/0.2.0/hop"

// relayBufferSize is the relay's copy buffer per direction of a relayed
// connection (go-libp2p's default: 2 KiB). Each read is forwarded as one
// muxer frame and one encrypted record, so 2 KiB reads cost a frame, a record
// and a system call per 2 KiB on both legs; 16 KiB, a TLS record's size, cuts
// the relay's CPU per byte (bench: CPU per GiB through a super-peer's relay).
// The resource manager accounts for it: 32 KiB per relayed connection.
const relayBufferSize = 16 << 10

// waitProtocol waits until the host handles proto, for at most 10 s.
func (p *Peer) waitProtocol(ctx context.Context, proto protocol.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !slices.Contains(p.host.Mux().Protocols(), proto) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// startRelayFinder gets an edge with super-peers its relay reservation at once.
// go-libp2p's AutoRelay looks for relays only after a reachability event, and
// AutoNAT emits its first one after a 15-second boot delay, so a peer behind a
// NAT would be unreachable for that long. Announcing "unknown" now starts the
// relay finder; AutoNAT's later verdict ("public" stops it) still rules.
func (p *Peer) startRelayFinder() error {
	if p.cfg.Role != RoleEdge || len(p.superPeers) == 0 || p.cfg.Reachability != ReachabilityUnknown {
		return nil
	}
	em, err := p.host.EventBus().Emitter(new(lpevent.EvtLocalReachabilityChanged), lpbus.Stateful)
	if err != nil {
		return fmt.Errorf("peer: reachability emitter: %w", err)
	}
	p.reachEmitter = em
	return em.Emit(lpevent.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown})
}

// ID is this peer's ID.
func (p *Peer) ID() ID { return ID(p.host.ID()) }

// ObservedAddrs are the addresses others have seen this peer's connections come
// from (identify), public ones included even if seen by a single peer.
func (p *Peer) ObservedAddrs() []string {
	if p.oam == nil {
		return nil
	}
	return addrStrings(p.oam.Addrs(1))
}

// Name is the configured display name, "anonymous" if none.
func (p *Peer) Name() string {
	if p.cfg.Name == "" {
		return "anonymous"
	}
	return p.cfg.Name
}

// Role is the configured role.
func (p *Peer) Role() Role { return p.cfg.Role }

// Dir is the state directory, empty for an in-memory peer. Other packages keep
// their state below it.
func (p *Peer) Dir() string { return p.cfg.Dir }

// Logger is the peer's logger; never nil.
func (p *Peer) Logger() *slog.Logger { return p.log }

// Libp2p is the escape hatch to the libp2p objects under a peer. juxta's own
// packages build on it; an application needs it only to reach libp2p
// directly (a protocol of its own, a metric juxta does not expose). The
// objects belong to the peer: do not close them.
type Libp2p struct {
	// Host is the libp2p host.
	Host host.Host
	// Routing is the Kademlia DHT: client mode on edges, server mode on
	// super-peers, protocol prefix DHTProtocolPrefix.
	Routing *dht.IpfsDHT
	// Key is the peer's private identity key.
	Key crypto.PrivKey
}

// Libp2p returns the escape hatch to the libp2p objects under this peer.
func (p *Peer) Libp2p() Libp2p { return Libp2p{Host: p.host, Routing: p.dht, Key: p.key} }

// Addrs returns the addresses others can use to reach this peer: its listen
// addresses and, when private, its relay addresses.
func (p *Peer) Addrs() []string { return addrStrings(p.host.Addrs()) }

// Addr returns how to reach this peer: its ID, its addresses and its
// super-peers as relays, at most MaxInviteAddrs addresses each and
// MaxInviteSuperPeers relays, as an invite carries them.
func (p *Peer) Addr() Addr {
	a := Addr{ID: p.ID(), Addrs: p.Addrs()}
	if len(a.Addrs) > MaxInviteAddrs {
		a.Addrs = a.Addrs[:MaxInviteAddrs]
	}
	for _, sp := range p.SuperPeers() {
		if len(a.Relays) == MaxInviteSuperPeers {
			break
		}
		if len(sp.Addrs) > MaxInviteAddrs {
			sp.Addrs = sp.Addrs[:MaxInviteAddrs]
		}
		a.Relays = append(a.Relays, sp)
	}
	return a
}

// Invite returns this peer's invite: Addr as a string to copy or put in a QR
// code.
func (p *Peer) Invite() string { return Invite{Peer: p.Addr()}.String() }

// PipeInvite is Invite naming a pipe this peer listens on, so that the
// receiver can dial it with the invite alone.
func (p *Peer) PipeInvite(pipe string) (string, error) {
	if len(pipe) > MaxInvitePipe {
		return "", fmt.Errorf("%w: pipe name of %d bytes, limit %d", ErrBadConfig, len(pipe), MaxInvitePipe)
	}
	return Invite{Peer: p.Addr(), Pipe: pipe}.String(), nil
}

// addrsFactory adjusts the addresses the host advertises.
//
// go-libp2p's AutoRelay builds circuit addresses only from a relay's public
// addresses, so a reservation on a relay reached over a LAN or loopback address
// is held but never advertised. For every configured super-peer holding our
// reservation (AutoRelay protects the connection) that has no circuit address
// yet, add one per configured address of the super-peer. A peer forced private
// advertises only its circuit addresses.
func (p *Peer) addrsFactory(addrs []ma.Multiaddr) []ma.Multiaddr {
	h := p.early.Load()
	if h == nil || p.cfg.Role == RoleSuperPeer {
		return addrs
	}
	have := relaysIn(addrs)
	for _, sp := range p.superPeers {
		if slices.Contains(have, ID(sp.ID)) || !(*h).ConnManager().IsProtected(sp.ID, "autorelay") {
			continue
		}
		circuit, err := ma.NewMultiaddr("/p2p/" + sp.ID.String() + "/p2p-circuit")
		if err != nil {
			continue
		}
		for _, a := range sp.Addrs {
			addrs = append(addrs, a.Encapsulate(circuit))
		}
	}
	if p.cfg.Reachability == ReachabilityPrivate {
		addrs = slices.DeleteFunc(addrs, func(a ma.Multiaddr) bool {
			_, err := a.ValueForProtocol(ma.P_CIRCUIT)
			return err != nil
		})
	}
	return addrs
}

// Close shuts the peer down. No goroutine it started survives. A second call
// returns an error wrapping net.ErrClosed.
func (p *Peer) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("peer: close: %w", net.ErrClosed)
	}
	return p.shutdown()
}

func (p *Peer) shutdown() error {
	p.closed.Store(true)
	p.cancel()
	var errs []error
	if p.mdns != nil {
		errs = append(errs, p.mdns.Close())
	}
	if p.reachEmitter != nil {
		errs = append(errs, p.reachEmitter.Close())
	}
	if p.hp != nil {
		errs = append(errs, p.hp.Close())
	}
	if p.dht != nil {
		errs = append(errs, p.dht.Close())
	}
	if p.host != nil {
		errs = append(errs, p.host.Close())
	}
	if p.rm != nil {
		errs = append(errs, p.rm.Close())
	}
	p.wg.Wait()
	p.events.Close()
	return errors.Join(errs...)
}
