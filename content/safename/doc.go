// Package safename makes file names that come from other peers safe to
// create and to print: SafeName sanitises a remote name (no path escapes, no
// control or bidi characters, no Windows device names, bounded length), Place
// moves a finished download into a folder under that name without ever
// overwriting, and Display makes any remote text safe for one terminal line.
//
// It is shared by the programs that receive files from peers (the fileshare
// and messenger examples), so that both refuse the same hostile names the
// same way. In JXTA terms it is the part of the content service's client that
// maps a content advertisement's name onto the local file system; libp2p has
// no equivalent.
package safename
