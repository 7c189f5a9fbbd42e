// Package peer is juxta's floor: a peer is an identity that is a key, an address
// that bypasses DNS, and a libp2p host wired for NAT traversal so that its user
// never meets libp2p's options.
//
// # Concepts
//
// A Peer has an ID derived from its Ed25519 key (JXTA's PeerID). The key lives in
// Config.Dir as identity.key, mode 0600, created on first start, so the ID
// survives restarts; an empty Dir gives an in-memory peer with a fresh key. Others
// reach a peer by ID: an Addr holds the ID, required, with addresses and relays
// as hints, and when none are known Connect asks the DHT through the
// super-peers. ParseID and ParseAddr read what ID.String and invites print.
//
// An invite (Peer.Invite, ParseInvite) is how a peer is handed to someone else: a
// short, checksummed string holding the ID, addresses and super-peers, fit to
// paste into a chat or show as a QR code. It replaces JXTA's peer and route
// advertisements.
//
// A super-peer (RoleSuperPeer, SuperPeerConfig) is the same program with another
// role: it relays for peers behind NATs (circuit relay v2 with limits suited to
// chat and signalling, see RelayLimits), runs the DHT in server mode, answers
// AutoNAT probes, and hosts the discovery index. It is JXTA's rendezvous and
// relay peer in one. It also tells edges about their own network, as STUN
// servers do: ObserveProtocol answers with the address a connection comes
// from, and ProbeProtocol sends a small probe to that address from another
// port or, for a super-peer it trusts, from another address. CheckNetwork
// reads a home router's mapping and filtering over UDP and TCP from them.
// Edges keep their connections to super-peers, redialling with jittered
// exponential backoff, so that a super-peer that restarts is not met by all
// its edges at once.
//
// Networks change under a peer: a router renumbered or rebooted, a laptop
// carried elsewhere. The peer pings the connections carrying streams in use
// every Config.Keepalive (DefaultKeepalive, 2 s), and an edge's connections
// to its super-peers every third interval, each ping on the connection
// itself (libp2p's ping protocol). A ping unanswered for eight of the
// path's round trips (1 s to 5 s), a second one included, closes the
// connection and starts recovery: the super-peers are redialled and the
// relay reservations renewed at once, reliable pipes resume on another
// path, and hole punches start again. In the lab, a chat between two
// port-restricted homes runs again about 3 s after a router is renumbered
// and is direct again shortly after (bench rows "lab: ..."). A super-peer
// pings nobody on its own; with N edges it answers about N/6 pings a
// second.
//
// # Mapping to libp2p
//
//	juxta              libp2p
//	ID                 peer.ID (same bytes and text form; a type of juxta's own)
//	Addr               peer.AddrInfo + relay hints
//	Peer               host.Host (Peer.Libp2p is the one escape hatch)
//	invite             Addr, and optionally a pipe name, encoded
//	super-peer         relay v2 service, kad-dht server, AutoNAT service
//	Path               direct connection vs /p2p-circuit ("limited") connection
//
// By default a peer listens on TCP and QUIC on every interface, offers on TCP
// Noise and TLS in the order this CPU runs faster (Security: a cipher
// measurement of a few milliseconds, once per process; both stay available for
// stock libp2p peers; TLS hands each large write's records to the socket in
// one system call, the same bytes stock TLS sends), and turns on the relay
// client, AutoRelay with the configured super-peers as static relays, DCUtR hole
// punching, AutoNAT v2 and identify. It never dials anything the user did not
// configure: the DHT bootstraps only from Config.SuperPeers and speaks its own
// protocol prefix, apart from the public IPFS DHT.
//
// # Events
//
// Peer.Subscribe delivers typed events (ReachabilityChanged, PeerConnected,
// PeerDisconnected, PathChanged, RelaysChanged, HolePunch) on an
// *event.Subscription under package event's one contract: the subscriber drains
// a buffered channel; the peer never blocks on it; events that do not fit are
// dropped and counted; Peer.Status always tells the current state.
//
// # The escape hatch
//
// No exported identifier of this package has a libp2p type in its signature,
// except Libp2p, which returns the host, the DHT and the key under a peer for
// the rare program that needs libp2p itself.
//
// # Closing
//
// Close is safe to call twice (the second call returns an error wrapping
// net.ErrClosed), and no goroutine the peer started outlives it.
package peer
