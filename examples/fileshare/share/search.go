package share

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// Timeouts of the engine's network operations.
const (
	publishTimeout = time.Minute
	searchTimeout  = 30 * time.Second
	// searchLimit bounds the advertisements one search takes from each scope.
	searchLimit = 500
	// updateEvery is the least time between two calls of a search's update.
	updateEvery = 100 * time.Millisecond
)

// Search asks the LAN and the super-peers (and floods, when configured) for
// files whose name or folders hold every word, the last as a prefix, in the
// net group and in every group joined. Results are merged by content ID with
// their sources; update, if not nil, receives the results so far, best first,
// as they stream in. The node's own files are left out.
func (n *Node) Search(ctx context.Context, words string, update func([]Result)) ([]Result, error) {
	if err := n.edge(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(words) == "" {
		return nil, errors.New("share: search for what? give some words")
	}
	ctx, cancel := context.WithTimeout(ctx, searchTimeout)
	defer cancel()
	m := newMerger(words)
	sources := discovery.DefaultSources &^ discovery.SourceLocal // own cache: stale after a sharer withdraws
	if n.cfg.Flood {
		sources |= discovery.SourceFlood
	}
	scopes := append([]string{""}, n.Groups()...)
	var errs []error
	found := 0
	last := time.Time{}
	for _, group := range scopes {
		q := discovery.Query{Type: AdType, Keywords: words, KeywordAttrs: []string{AttrName, AttrKeywords}, Limit: searchLimit, Sources: sources}
		d := n.d
		var keys *groupKeys
		if group != "" {
			g, ok := n.group(group)
			if !ok {
				continue
			}
			d, keys = g.g.Discovery(), g.keys
			// Whole words only: a group's index holds blinded words.
			q.Keywords, q.KeywordAttrs = keys.blindWords(words), []string{AttrKeywords}
			if q.Keywords == "" {
				continue
			}
		}
		for r, err := range d.Find(ctx, q) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if r.Publisher == n.ID() {
				continue
			}
			var f File
			if keys != nil {
				f, err = keys.openAd(r.Advertisement)
			} else {
				f, err = ParseFile(r.Advertisement)
			}
			if err != nil || !m.add(f, r.Publisher, group) {
				continue
			}
			found++
			if update != nil && time.Since(last) >= updateEvery {
				last = time.Now()
				update(m.results())
			}
		}
	}
	rs := m.results()
	if update != nil {
		update(rs)
	}
	if found == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// LinkResult turns a share link into a result to Get.
func (n *Node) LinkResult(link string) (Result, error) {
	l, err := content.ParseLink(link)
	if err != nil {
		return Result{}, err
	}
	r := Result{ID: l.ID.String(), Name: SafeName(l.Name), Size: l.Size, Kind: KindOf(l.Name), Link: link}
	for _, ai := range l.Providers {
		r.Sources = append(r.Sources, peer.ID(ai.ID))
	}
	return r, nil
}
