package share

import "github.com/juxta-p2p/juxta/content/safename"

// The names of remote files are made safe by package content/safename,
// which the messenger shares; these are its functions under share's name.

// MaxNameBytes bounds a sanitised file name, extension included.
const MaxNameBytes = safename.MaxNameBytes

// ErrNoFreeName: every suffixed variant of a name is taken in the downloads
// folder.
var ErrNoFreeName = safename.ErrNoFreeName

// SafeName turns a name from a remote advertisement into one safe to create
// in the downloads folder and to print (see safename.SafeName).
func SafeName(name string) string { return safename.SafeName(name) }

// Place moves the finished file src into dir under SafeName(name), never
// overwriting (see safename.Place).
func Place(src, dir, name string) (string, error) { return safename.Place(src, dir, name) }

// Display makes any string safe to print on one line of a terminal, at most
// max characters long (see safename.Display).
func Display(s string, max int) string { return safename.Display(s, max) }
