package peer

import (
	"fmt"
	"log/slog"
	"time"
)

// Role is what a peer does for others.
type Role int

const (
	// RoleEdge is an ordinary peer: a laptop, a phone, a worker. The default.
	RoleEdge Role = iota
	// RoleSuperPeer serves others: it relays (circuit relay v2), runs the DHT in
	// server mode, answers AutoNAT probes and hosts the discovery index. JXTA's
	// rendezvous and relay peers in one.
	RoleSuperPeer
)

func (r Role) String() string {
	switch r {
	case RoleEdge:
		return "edge"
	case RoleSuperPeer:
		return "super-peer"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Reachability says whether other peers can dial this one directly.
type Reachability int

const (
	// ReachabilityUnknown: not yet determined (AutoNAT has not concluded).
	ReachabilityUnknown Reachability = iota
	// ReachabilityPublic: dialable directly from the internet.
	ReachabilityPublic
	// ReachabilityPrivate: behind a NAT or firewall; reached through relays and
	// hole punching.
	ReachabilityPrivate
)

func (r Reachability) String() string {
	switch r {
	case ReachabilityPublic:
		return "public"
	case ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// Config configures a peer. Its zero value is an in-memory LAN peer: a fresh
// identity, TCP and QUIC on every interface at a random port, mDNS on, NAT
// traversal on, no super-peers and no port mapping.
type Config struct {
	// Dir holds the identity key (identity.key, mode 0600) and the peer's state.
	// It is created if missing. Empty means an in-memory peer with a fresh key.
	Dir string

	// Name is the display name others see. Empty means "anonymous".
	Name string

	// ListenAddrs are multiaddrs to listen on. Empty means TCP and QUIC on all
	// IPv4 and IPv6 interfaces at Port.
	ListenAddrs []string

	// Port is the fixed port for the default listen addresses (TCP and UDP use the
	// same number). 0 picks a free port. Ignored when ListenAddrs is set.
	Port int

	// SuperPeers are the super-peers to use, each an invite string or a multiaddr
	// ending in /p2p/<id>. They are the only peers dialled at start, the DHT's only
	// bootstrap peers and the static relays of AutoRelay. No public bootstrap list
	// is ever used.
	SuperPeers []string

	// Role is RoleEdge (default) or RoleSuperPeer.
	Role Role

	// NoMDNS turns LAN discovery off. mDNS sends multicast out of every
	// interface: turn it off in tests and anywhere on loopback.
	NoMDNS bool

	// PortMapping turns on UPnP/NAT-PMP port mapping on the home router. Off by
	// default: it sends multicast on the LAN.
	PortMapping bool

	// Reachability forces what the peer believes about itself instead of asking
	// AutoNAT. ReachabilityPrivate makes an edge advertise only relay addresses;
	// ReachabilityPublic makes a super-peer start its relay service at once.
	// ReachabilityUnknown (default) lets AutoNAT v2 decide; super-peers default
	// to public.
	Reachability Reachability

	// Relay limits the relay service of a super-peer. Zero fields take the
	// defaults of DefaultRelayLimits.
	Relay RelayLimits

	// Conns bounds the connections and streams others may open to this peer.
	// Zero fields take the defaults of DefaultConnLimits.
	Conns ConnLimits

	// Keepalive is how often the peer pings the connections carrying pipes
	// or transfers in use, each on the connection itself; an edge pings its
	// super-peers every third interval. A ping unanswered for eight of that
	// path's round trips (at least 1 s, at most 5 s, 5 s until one was
	// answered; a second ping goes out at half of it) closes the connection and starts recovery: the
	// super-peers are redialled and the relay reservations renewed at once,
	// streams resume on another path, and new hole punches start. A dead
	// path in use is so closed within one interval plus that patience: 3 s
	// with the default on a path of up to 125 ms. The pings also keep those
	// paths' NAT mappings open. Each costs the far side a stream: a
	// super-peer with N idle edges answers N/(3·Keepalive) pings a second.
	// Zero means DefaultKeepalive (2 s); a negative value turns keepalives
	// off, leaving a dead path to the transport's idle timeout (30 s for
	// QUIC).
	Keepalive time.Duration

	// Logger receives the peer's logs. Nil discards them.
	Logger *slog.Logger
}

// RelayLimits bound what a super-peer's relay (circuit v2) spends on others. The
// defaults suit chat and signalling: a relayed connection carries messages and
// hole-punch coordination, not bulk transfer, which moves to a direct path.
type RelayLimits struct {
	// MaxReservations is how many peers may hold a reservation at once. Default 256.
	MaxReservations int
	// MaxReservationsPerIP bounds reservations from one IP address. Default 32, so
	// a household or a test on loopback is not starved.
	MaxReservationsPerIP int
	// MaxCircuits bounds relayed connections per peer. Default 32.
	MaxCircuits int
	// ReservationTTL is how long a reservation lasts before it must be renewed.
	// Default 1 h.
	ReservationTTL time.Duration
	// ConnDuration is how long one relayed connection may live before the relay
	// resets it. Default 30 min (go-libp2p's own default is 2 min).
	ConnDuration time.Duration
	// ConnData is how many bytes one relayed connection may carry in each
	// direction before the relay resets it. Default 4 MiB (go-libp2p: 128 KiB).
	ConnData int64
}

// DefaultRelayLimits returns the limits a super-peer uses when Config.Relay is
// left zero.
func DefaultRelayLimits() RelayLimits {
	return RelayLimits{
		MaxReservations:      256,
		MaxReservationsPerIP: 32,
		MaxCircuits:          32,
		ReservationTTL:       time.Hour,
		ConnDuration:         30 * time.Minute,
		ConnData:             4 << 20,
	}
}

func (l RelayLimits) withDefaults() RelayLimits {
	d := DefaultRelayLimits()
	if l.MaxReservations > 0 {
		d.MaxReservations = l.MaxReservations
	}
	if l.MaxReservationsPerIP > 0 {
		d.MaxReservationsPerIP = l.MaxReservationsPerIP
	}
	if l.MaxCircuits > 0 {
		d.MaxCircuits = l.MaxCircuits
	}
	if l.ReservationTTL > 0 {
		d.ReservationTTL = l.ReservationTTL
	}
	if l.ConnDuration > 0 {
		d.ConnDuration = l.ConnDuration
	}
	if l.ConnData > 0 {
		d.ConnData = l.ConnData
	}
	return d
}

// TestConfig is the preset for tests and demos on one machine: in memory,
// loopback only (TCP and QUIC on 127.0.0.1), no mDNS, no port mapping.
func TestConfig() Config {
	return Config{
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		NoMDNS:      true,
	}
}

// SuperPeerConfig is the preset for a super-peer keeping its identity in dir, on
// a fixed port (0 for any). It is publicly reachable by declaration, so its relay
// service starts at once, and it runs no mDNS.
func SuperPeerConfig(dir string, port int) Config {
	return Config{
		Dir:          dir,
		Name:         "super-peer",
		Port:         port,
		Role:         RoleSuperPeer,
		NoMDNS:       true,
		Reachability: ReachabilityPublic,
	}
}

// TestSuperPeerConfig is SuperPeerConfig on loopback, in memory.
func TestSuperPeerConfig() Config {
	c := TestConfig()
	c.Role = RoleSuperPeer
	c.Name = "super-peer"
	c.Reachability = ReachabilityPublic
	return c
}
