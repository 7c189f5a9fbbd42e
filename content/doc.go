// Package content moves files and blobs between peers, verified piece by piece
// and pulled from many providers at once: JXTA's content service, done the way
// BitTorrent and iroh-blobs taught.
//
// # Content IDs and verification
//
// Content is addressed by its BLAKE3 hash (ID), printed as a CIDv1 with the raw
// codec and a blake3 multihash ("bafkr4…"). Adding content computes its Bao
// tree once and keeps it outboard, beside the data, in the service's Dir. The
// content is cut into 256 KiB pieces (PieceSize), each one Bao chunk group, so
// a downloader first fetches the small tree (64 bytes per piece), checks it
// against the ID, and then verifies every piece on arrival with one BLAKE3
// pass before it is written or served onward. BLAKE3/Bao was chosen over BEP
// 52's SHA-256 merkle tree because the ID is the plain hash of the bytes (what
// b3sum prints), hashing runs at several GB/s with SIMD, and
// lukechampine.com/blake3 ships the Bao encoder.
//
// Files are shared in place (Add): they are not copied; the index (bbolt)
// records path, size and modification time, and a file that changed is hashed
// again when added again, and is not served meanwhile (ErrStale).
//
// # The swarm
//
// A downloader opens a stream (ProtocolID) to each provider it finds — the
// caller's hints (WithProviders, FromLink), the super-peers' index through
// discovery (a TypeContent advertisement) and DHT provider records for the
// CID — up to Config.MaxPeers at once. A provider answers with the size and a
// bitfield of the pieces it has, and sends have-updates as it gets more: a
// downloader serves what it already has. Pieces are requested rarest first,
// with about a second of data at the provider's measured rate outstanding
// (at most Config.Pipeline requests) so that no round trip idles a fast link
// and a slow provider does not sit on pieces others could send;
// when all remaining pieces are in flight (endgame), they are asked again of
// other providers that have run dry, and the duplicates cancelled when the
// first copy arrives. Peers that start downloading together find each other
// before any knows the tree: a downloader holds such a hello (bounded by
// MaxUploads and a timeout) until its own tree arrives, instead of answering
// "not found" and being given up on.
// A provider sending a piece that fails verification gets a strike; after
// Config.MaxBadPieces it is banned (BanTime) and its pieces are fetched
// elsewhere. When no provider is left the error names the ID and says why
// for each provider (ErrNoProviders, ErrBadData, ErrRelayOnly…).
//
// Uploads are choked as in BitTorrent: downloaders say whether they are
// interested, and every 10 s the UploadSlots (4) interested peers that
// uploaded most to us are unchoked (a seed instead serves those it has served
// least, so a fast taker cannot hog it, and a peer whose download finished
// serves first those that gave to it), plus one optimistic unchoke rotated
// every 30 s; peers ranked by the bytes they gave when their rates tie, and
// a peer that is not interested unchoked only when it ranks above the last
// interested one. A seed serving several downloaders at once super-seeds
// (BitTorrent's BEP 16): it shows each only a few pieces, those it sent
// least, and one more with each piece sent, until every piece was sent
// once, and it unchokes all of them meanwhile; so the seed's uplink puts
// new pieces into the swarm instead of the same rare pieces to every
// downloader. Rates are capped
// globally and per peer (Config.UploadRate and friends).
//
// A download writes to dst+".part" and keeps its piece bitmap in
// dst+".part.state"; Fetch again after a crash (even kill -9) resumes, and
// only the pieces in flight at the time are fetched again. After a power cut
// or a kernel crash, the pieces the bitmap claims are verified again first.
// A complete file, every piece verified, is renamed into place and Fetch
// returns; the fsync that makes it durable follows in the background (Flush
// waits for it). Content whose fsync a crash or power cut prevented is
// verified again before it is served or returned, and what did not reach
// the disk is fetched again.
// Memory is bounded:
// a few piece buffers per stream, a bounded request queue per downloader, and
// every frame's length is checked before it is read.
//
// # Events
//
// Subscribe delivers Progress events (bytes, pieces, providers with their
// rates, ETA) under juxta's one event contract (package event): never
// blocking the publisher, in order, closed with the subscription.
//
// # JXTA, BitTorrent and libp2p
//
//	juxta content        JXTA                       BitTorrent / libp2p
//	ID (BLAKE3, CID)     content ID (codat)         info-hash, CID
//	Link                 content advertisement      magnet link, iroh ticket
//	Service.Add          share content              seeding a torrent
//	Service.Fetch        content transfer           leeching; a libp2p stream per peer
//	TypeContent ad       SRDI-indexed advertisement tracker; DHT provider records
//	Config.Allow         peer group scope           private torrent
package content
