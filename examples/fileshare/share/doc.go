// Package share is the file-sharing example's engine, apart from any user
// interface: Soribada and Napster on juxta. A Node shares folders, searches
// everyone's files by keyword, and downloads from every peer that has a file
// at once; the fileshare command is a thin shell over it.
//
// # Sharing
//
// Node.Share watches a folder (fsnotify; Watcher) and hands every regular file
// to the content service, which hashes it once (BLAKE3/Bao) and serves it in
// place. Each file is advertised (type AdType, "fileshare.file") with its
// name, keywords from its name and the folders above it, size, kind and
// content ID, and a share link in the body; advertisements go to the
// super-peers in batches (discovery.PublishBatch). Added, changed and removed
// files are re-published or withdrawn within a second or so.
//
// # Searching and getting
//
// Node.Search asks the LAN and the super-peers (and floods, when
// Config.Flood) for files holding every word, the last as a prefix. Answers
// stream in and are merged by content ID into Results with their sources,
// best first. Node.Get connects to the sources by peer ID (through a relay and
// a hole punch when they sit behind NATs, waiting briefly for a direct path),
// then fetches from all of them at once, verified piece by piece, into a
// partial file that survives a crash; the finished file lands in the
// downloads folder under SafeName, never overwriting (Place), and is shared
// onward unless Config.NoShareDownloads.
//
// # Groups and pinning
//
// A folder can be shared with a password group only. Its advertisements are
// private (see private.go): a blind keyword index and a sealed body under keys
// derived from the password, so neither outsiders nor super-peers can read or
// search them, and the content service serves the group's files only to
// peers that prove membership (content.Config.AllowContent with
// groups.Group.Authorize). Members can volunteer disk space (Node.Volunteer)
// and pin a file (Node.Pin) with K: the group then keeps it on at least K
// online members, presence telling who is online, and no volunteer holds more
// than it offered.
//
// # Mapping to JXTA and libp2p
//
//	fileshare               JXTA                         libp2p
//	file advertisement      content advertisement        signed envelope
//	search                  discovery query (SRDI)       streams to super-peers
//	get                     content service transfer     streams, many at once
//	group share             peer group content           namespaced protocols
//	pinning                 (Freenet's storage)          GossipSub presence
//
// Names that arrive in advertisements come from strangers: SafeName and Place
// keep them inside the downloads folder and never overwrite a file, and
// Display keeps them from garbling a terminal.
package share
