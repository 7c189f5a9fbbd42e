// Package labrecover runs the recovery scenarios of issue 16 in a netlab
// lab: two homes behind port-restricted NATs chat over a reliable message
// pipe (pipes.MessageConfig{Reliable: true}) through one super-peer while
// the network changes under home a: its router renumbered (renumber) or
// rebooted with its link down 10 s (reboot), laptop a carried to a café
// behind a symmetric NAT and back home (roam), or both routers keeping idle
// UDP mappings only 15 s while the chat idles (idle). Run returns what one
// scenario measured: messages lost, duplicated or reordered, the time until
// a message sent after the change arrives, and the time until the path is
// direct again.
//
// `juxta lab recover` and its tests (cmd/juxta) and the bench rows (bench)
// share it; each runs its own binary in the lab's hosts through
// Options.Program, in the roles Chat and SuperPeer. It needs root, as
// netlab does.
//
// In JXTA terms the chat is two peers with a reliable unicast pipe,
// rendezvous-relayed until the hole punch (libp2p DCUtR) makes it direct;
// the recovery under test is peer's keepalive (libp2p ping on the very
// connection) and the pipe's resume.
package labrecover
