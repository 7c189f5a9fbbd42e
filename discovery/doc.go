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
// counts each drop by reason in Stats. VerifyKept checks the same except the
// lifetime, for an advertisement an application kept itself (a group's, in
// its saved state): its publisher's signature stays authentic after the
// lifetime ends, which only says how long others treat it as current.
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
//     a capacity and a per-publisher quota (Config; defaults 100,000 and
//     20,000: a household of sharers with 10,000 files each), and forward
//     misses to the super-peers they trust (configured, or
//     Config.TrustedSuperPeers; never merely a peer that serves a relay) with
//     a TTL and a visited list, so that none answers a query twice: the
//     hierarchical overlay of seed 002; with one super-peer, Napster's index.
//   - SourceFlood: Gnutella's flooding among connected peers, with a TTL and
//     duplicate suppression; only peers with Config.Flood forward. Off by
//     default.
//   - SourceDHT: an exact key (type, attribute = value) through kad-dht provider
//     records; the advertisement is then fetched from a provider and verified.
//
// # Keywords
//
// A Query with Keywords is a keyword search, as Napster and Soribada did:
// every word must appear in the chosen attributes (Query.KeywordAttrs, or
// all), the last as a prefix, ranked by BM25 and then by how many publishers
// offer the same type and ID, paged by Offset and Limit. Words are split at
// Unicode word boundaries (UAX #29) and punctuation, case folded and NFC
// normalized, so a Hangul name stored decomposed by macOS is found by the same
// name typed composed. Caches and super-peers answer from an inverted index
// written here (index.go says why not SQLite FTS5 or bleve), rebuilt from the
// cache file at start so that it agrees with the cache's expirations; the
// bench rows "keyword query, 100,000 ads" and "memory per indexed ad" measure
// it. Attribute (glob) queries match outside the cache's lock, within a time
// budget, and a super-peer runs few of them at once.
//
// # Publishing many
//
// PublishBatch signs each advertisement and sends up to MaxPublishBatch per
// frame; each is verified on its own, the batch waits for the super-peer's
// publish rate rather than being refused, and a publisher over its quota is
// refused before any signature check. Republishing refreshes by digest: a
// super-peer that still holds an advertisement gets its hash, not the
// advertisement. A published advertisement is republished until its
// lifetime ends; one published with PublishRenewed is signed again (fresh
// Issued, higher Seq) once half of it has passed, for as long as the peer
// runs: groups keep theirs so.
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
// A query to a peer goes on the stream the last query to that peer used, kept
// open for a few seconds (at most one per peer, and a bounded number on the
// answering side): opening a stream costs about as much as the query.
//
// Every remote peer is rate limited on queries and publishes (the limiters and
// the remembered query IDs are size-bounded LRUs; IDs are at most MaxQID
// bytes), frames are bounded by MaxFrame, and every request by StreamTimeout. The peer's own advertisement
// (TypePeer, with its name and invite as the body) is published at start, so
// that a peer can be found by name.
package discovery
