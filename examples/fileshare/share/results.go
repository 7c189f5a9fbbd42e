package share

import (
	"cmp"
	"slices"
	"strings"

	"github.com/juxta-p2p/juxta/peer"
)

// Result is one file found by a search: every advertisement of the same
// content ID merged, with the peers that offer it.
type Result struct {
	ID      string // content ID
	Name    string // safe to print and to use as a file name (SafeName)
	Path    string // where it sits at the sharer (best source), for display
	Size    int64
	Kind    string
	Sources []peer.ID // publishers offering it, first come first
	Link    string    // a share link from one of them
	Group   string    // scope it was found in ("" for the net group)
	// score orders results: whole-word hits in the name first.
	score int
}

// maxResults bounds the distinct files one search keeps.
const maxResults = 1000

// maxSources bounds the sources kept per result.
const maxSources = 64

// merger folds advertisements into results by content ID.
type merger struct {
	terms []string
	byID  map[string]*Result
	order []*Result
}

func newMerger(words string) *merger {
	return &merger{terms: strings.Fields(strings.ToLower(words)), byID: map[string]*Result{}}
}

// add folds in one file advertised by publisher in group; it reports
// whether the results changed.
func (m *merger) add(f File, publisher peer.ID, group string) bool {
	r, ok := m.byID[f.ID]
	if !ok {
		if len(m.order) >= maxResults {
			return false
		}
		r = &Result{ID: f.ID, Name: SafeName(f.Name), Path: Display(f.Rel, 200), Size: f.Size, Kind: f.Kind, Link: f.Link, Group: group}
		r.score = m.scoreOf(r.Name)
		m.byID[f.ID] = r
		m.order = append(m.order, r)
	}
	if slices.Contains(r.Sources, publisher) || len(r.Sources) >= maxSources {
		return !ok
	}
	r.Sources = append(r.Sources, publisher)
	if r.Link == "" {
		r.Link = f.Link
	}
	return true
}

// scoreOf counts the query's words found in the name, whole words counting
// double.
func (m *merger) scoreOf(name string) int {
	low := strings.ToLower(name)
	words := strings.FieldsFunc(low, func(r rune) bool { return strings.ContainsRune(" _-.()[],'", r) })
	s := 0
	for _, t := range m.terms {
		switch {
		case slices.Contains(words, t):
			s += 2
		case strings.Contains(low, t):
			s++
		}
	}
	return s
}

// results returns a copy, best first: by name score, then by the number of
// sources, then by name.
func (m *merger) results() []Result {
	out := make([]Result, len(m.order))
	for i, r := range m.order {
		out[i] = *r
		out[i].Sources = slices.Clone(r.Sources)
	}
	slices.SortStableFunc(out, func(a, b Result) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(len(b.Sources), len(a.Sources)), cmp.Compare(a.Name, b.Name))
	})
	return out
}
