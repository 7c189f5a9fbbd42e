// Package discovery finds things by what they are, not where they are: peers,
// pipes, groups and application resources, described by signed advertisements
// and searched by attribute.
//
// # Advertisements
//
// An Advertisement has a type ("juxta.peer", "juxta.pipe", "juxta.group", or an
// application's own such as "fileshare.file"), an ID, indexed string attributes,
// an opaque body, a lifetime (how long it is valid at its publisher) and an
// expiration (how long others may cache it; a receiver keeps it for the smaller
// of the two, as in JXTA). Publish signs it with the peer's key inside a libp2p
// signed envelope (core/record, domain "juxta-advertisement") over a canonical
// deterministic-CBOR encoding. Every receiving path runs Verify, which drops
// what is tampered, signed by someone other than the claimed publisher,
// expired, dated more than MaxClockSkew ahead, or larger than MaxAdSize, and
// counts each drop by reason in Stats.
//
// # Where Find looks
//
// Nearest first, stopping once Query.Limit advertisements are found:
//
//   - SourceLocal: the peer's cache, persisted in its directory (bbolt,
//     discovery.db) and purged of expired entries at start and as it runs.
//   - SourceLAN: neighbours on the LAN (found by mDNS, or connected directly
//     over a private address), asked over /juxta/discovery/1.0.0.
//   - SourceSuperPeers: super-peers index what edges publish to them, bounded by
//     a capacity and a per-publisher quota, and forward misses to the
//     super-peers they know with a TTL and duplicate suppression: the
//     hierarchical overlay of seed 002; with one super-peer, Napster's index.
//   - SourceFlood: Gnutella's flooding among connected peers, with a TTL and
//     duplicate suppression; only peers with Config.Flood forward. Off by
//     default.
//   - SourceDHT: an exact key (type, attribute = value) through kad-dht provider
//     records; the advertisement is then fetched from a provider and verified.
//
// Results stream as an iter.Seq2, deduplicated; a newer version of an
// advertisement already yielded is yielded again. Watch delivers matching
// advertisements as they enter the cache, like JXTA's DiscoveryListener, under
// juxta's one event contract (package event).
//
// # Mapping to JXTA and libp2p
//
//	juxta                JXTA                         libp2p
//	Advertisement        XML advertisement            record.Envelope
//	Service.Publish      DiscoveryService.publish     provider records (DHT)
//	Service.Find         getRemoteAdvertisements      streams, kad-dht
//	super-peer index     rendezvous SRDI              —
//	Service.Scoped       peer group's discovery       —
//
// Every remote peer is rate limited on queries and publishes, frames are bounded
// by MaxFrame, and every request by StreamTimeout. The peer's own advertisement
// (TypePeer, with its name and invite as the body) is published at start, so
// that a peer can be found by name.
package discovery
