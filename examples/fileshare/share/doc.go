// Package share is the file-sharing example's engine, apart from any user
// interface: Soribada and Napster on juxta. A sharer's folders are watched
// and every regular file in them is advertised (type "fileshare.file") with
// its name, keywords from its name and folders, size, kind and content ID;
// searches ask the LAN and the super-peers by keyword, merge the answers by
// content ID with the number of sources, and downloads pull verified pieces
// from every source at once through the content package.
//
// # Mapping to JXTA and libp2p
//
//	fileshare               JXTA                         libp2p
//	file advertisement      content advertisement        signed envelope
//	search                  discovery query (SRDI)       streams to super-peers
//	get                     content service transfer     streams, many at once
//	group share             peer group content           namespaced protocols
//
// Names that arrive in advertisements come from strangers: SafeName and Place
// keep them inside the downloads folder and never overwrite a file, and
// Display keeps them from garbling a terminal.
package share
