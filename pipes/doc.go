// Package pipes connects peers by pipe ID, not by address: JXTA's pipes on
// libp2p streams and GossipSub.
//
// A listener binds a pipe on its peer and publishes a binding (a discovery
// advertisement of type juxta.pipe carrying the pipe ID, name and kind). Dial
// resolves the pipe ID to live bindings through discovery — cached ones first,
// then LAN, super-peers and the DHT — and connects by peer ID, letting the peer
// layer pick the path: direct, hole-punched or relayed. Several peers may bind
// one pipe: Dial takes the first that answers (ToPeer names one), fails over to
// the next, and finds a listener again after it moves to another peer. Each pipe
// speaks its own protocol, /juxta/pipe/1/<kind>/<scope>/<id>, so a group's pipe
// and the net group's pipe of the same name never meet.
//
// # Kinds
//
//   - Stream pipes (Listen, Dial) are net.Listener and net.Conn, with deadlines
//     and half-close; errors are *net.OpError wrapping net.ErrClosed and
//     os.ErrDeadlineExceeded. They pass golang.org/x/net/nettest.TestConn on TCP
//     and QUIC. A stream pipe stays on the connection it was opened on; see Conn
//     for why it does not follow a relay-to-direct upgrade.
//   - Message pipes (ListenMessages, DialMessages) carry framed messages
//     (go-msgio) up to MessageConfig.MaxMessage on both sides. With
//     MessageConfig.Reliable, every message arrives exactly once and in order
//     across reconnects: messages carry sequence numbers, the receiver sends
//     cumulative acknowledgements, and the sender keeps a bounded resend buffer
//     (Send blocks while it is full, until its ctx ends; nothing is dropped
//     silently). When the stream breaks, the dialer opens a new one to the same
//     peer and both sides resend what the other has not acknowledged; when a
//     relayed pipe's peer becomes reachable directly, the dialer moves the
//     session to the direct connection the same way. WaitDelivered tells the
//     sender that a message was received. A message is copied once on each
//     side, into a pooled buffer: the sender's goes back to the pool when the
//     message is acknowledged, the receiver's when Release is called on what
//     Recv returned (optional, as go-msgio's ReleaseMsg).
//   - Propagate pipes (Join) are GossipSub topics, one per scope and pipe, with
//     StrictSign: every Message carries its sender's verified peer ID. Members
//     find each other through their bindings. A watchdog repairs a GossipSub
//     state go-libp2p-pubsub can leave for good: a connected member whose
//     subscriptions it forgot when its own stream to the member died (see
//     watchdog.go); it resets the member's GossipSub streams, or reconnects.
//
// # Trust
//
// Anyone can bind any pipe name, so a dial by name alone follows only bindings
// the dialer trusts; a stranger's listener of the same name, found through a
// shared super-peer, is skipped (ErrUntrusted, wrapped in ErrNoBinding):
//
//   - ToPeer names the peer: its binding is trusted, published or not.
//   - In a group's scope (Scoped with an Authorize hook) every binding is
//     followed, because the hook checks the listener's membership before
//     anything is sent.
//   - In the net group, a binding is followed by name alone only if its
//     listener said Public, or if it is this peer's own.
//
// A listener chooses what it publishes: Public for a service meant for
// strangers, nothing for one reached by naming its peer (the default), or
// Unpublished to publish no binding at all. Propagate pipes are open topics:
// their bindings are always public, and a group's hooks keep them private.
//
// # Over relays
//
// Pipes open streams with network.WithAllowLimitedConn, so all three kinds work
// over relayed connections, within the relay's limits (peer.RelayLimits).
//
// # Scopes
//
// Service.Scoped gives the same service in a group's scope with Hooks: Authorize
// checks a stream when it opens, before the application sees it; the propagate
// hooks validate (inside GossipSub, so rejected messages are not forwarded), seal
// and open payloads. The groups package uses them for membership and encryption.
package pipes
