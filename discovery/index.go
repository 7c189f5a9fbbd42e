package discovery

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The index is an inverted index over the attributes of the cached
// advertisements, written here rather than taken from SQLite FTS5 or bleve:
//
//   - it lives in memory beside the cache and is rebuilt from the bbolt file at
//     start, so it can never disagree with the cache about what has expired
//     (an engine with its own files would need a second source of truth kept
//     in step across crashes);
//   - what it must do is small (AND of terms, a prefix, BM25, a bounded top-k)
//     and an advertisement is at most 32 attributes, so a few hundred lines
//     keep the memory per advertisement (postings of 8 bytes) and the CPU per
//     query (a budget of postings visited) under our control;
//   - it adds no module (bleve pulls in some forty packages, modernc.org/sqlite
//     a C-to-Go translated SQLite of ~20 MB of object code) to every peer's
//     binary, edges included, which all keep a cache.
//
// The bench row "discovery index" measures its cost: memory per indexed
// advertisement and query latency at 100,000 advertisements, against a scan.
//
// Terms are keyed "scope\x00field\x00token", where field is "*" (every
// attribute) or "=" + an attribute name, so a query over one scope and chosen
// attributes reads only their postings. Removal is lazy: a removed document's
// slot is cleared and skipped, and the postings are compacted once the dead
// outnumber the live.
type index struct {
	docs  []*entry             // by document number; nil once removed
	live  int                  // documents not removed
	dead  int                  // removed documents still in postings
	total int                  // tokens of live documents, for the average length
	terms map[string][]posting // postings in increasing document order
	heads map[string][]string  // "scope\x00field\x00" + first rune → term keys, for prefixes
	pubs  map[string]int       // "scope\x00type\x00id" → live documents: publishers offering it
}

type posting struct {
	doc uint32
	tf  uint16
}

// Search bounds, so that no query holds the cache for long.
const (
	// maxPostingsPerQuery bounds the postings one keyword query visits.
	maxPostingsPerQuery = 400_000
	// maxPrefixTerms bounds the terms a prefix expands to.
	maxPrefixTerms = 512
	// prefixWeight discounts a term matched by prefix against an exact one.
	prefixWeight = 0.9
	// BM25 parameters.
	bm25K1 = 1.2
	bm25B  = 0.75
)

func newIndex() *index {
	return &index{terms: map[string][]posting{}, heads: map[string][]string{}, pubs: map[string]int{}}
}

func termKey(scope, field, tok string) string { return scope + "\x00" + field + "\x00" + tok }

func headKey(tk string) string {
	i := strings.LastIndexByte(tk, 0)
	_, n := utf8.DecodeRuneInString(tk[i+1:])
	return tk[:i+1+n]
}

func pubKey(a *Advertisement) string { return a.Scope + "\x00" + a.Type + "\x00" + a.ID }

// add indexes e and assigns its document number.
func (ix *index) add(e *entry) {
	if len(ix.docs) >= math.MaxUint32-1 {
		ix.compact()
	}
	doc := uint32(len(ix.docs))
	ix.docs = append(ix.docs, e)
	e.doc = doc
	tf := map[string]uint16{}
	n := 0
	for attr, v := range e.ad.Attrs {
		tokenize(v, func(tok string) bool {
			tf[termKey(e.ad.Scope, anyField, tok)]++
			tf[termKey(e.ad.Scope, attrField(attr), tok)]++
			n++
			return n < maxTokensPerAd
		})
		if n >= maxTokensPerAd {
			break
		}
	}
	for k, c := range tf {
		list, ok := ix.terms[k]
		if !ok {
			h := headKey(k)
			ix.heads[h] = append(ix.heads[h], k)
		}
		ix.terms[k] = append(list, posting{doc: doc, tf: c})
	}
	e.dl = uint16(n)
	ix.live++
	ix.total += n
	ix.pubs[pubKey(&e.ad)]++
}

// remove forgets e; its postings go at the next compaction.
func (ix *index) remove(e *entry) {
	if int(e.doc) >= len(ix.docs) || ix.docs[e.doc] != e {
		return
	}
	ix.docs[e.doc] = nil
	ix.live--
	ix.dead++
	ix.total -= int(e.dl)
	pk := pubKey(&e.ad)
	if ix.pubs[pk]--; ix.pubs[pk] <= 0 {
		delete(ix.pubs, pk)
	}
	if ix.dead > max(ix.live, 4096) {
		ix.compact()
	}
}

// compact renumbers the live documents and drops the dead from the postings.
func (ix *index) compact() {
	renum := make([]uint32, len(ix.docs))
	docs := make([]*entry, 0, ix.live)
	for i, e := range ix.docs {
		if e != nil {
			renum[i] = uint32(len(docs))
			e.doc = uint32(len(docs))
			docs = append(docs, e)
		}
	}
	for k, list := range ix.terms {
		out := list[:0]
		for _, p := range list {
			if ix.docs[p.doc] != nil {
				out = append(out, posting{doc: renum[p.doc], tf: p.tf})
			}
		}
		if len(out) == 0 {
			delete(ix.terms, k)
			continue
		}
		ix.terms[k] = slices.Clip(out)
	}
	ix.heads = make(map[string][]string, len(ix.heads))
	for k := range ix.terms {
		h := headKey(k)
		ix.heads[h] = append(ix.heads[h], k)
	}
	for _, ks := range ix.heads {
		slices.Sort(ks)
	}
	ix.docs = docs
	ix.dead = 0
}

// hit is one ranked result.
type hit struct {
	e     *entry
	until time.Time // e.until when the hit was taken
	score float64
	pubs  int
}

// wlist is one posting list of a query term, with its weight (idf, discounted
// for a prefix expansion).
type wlist struct {
	list []posting
	w    float64
}

// groups returns, for each query term, the posting lists that match it.
func (ix *index) groups(kq *kwQuery, scope string) [][]wlist {
	n := float64(max(ix.live, 1))
	idf := func(df int) float64 {
		d := math.Min(float64(df), n)
		return math.Log(1 + (n-d+0.5)/(d+0.5))
	}
	last := len(kq.terms) - 1
	groups := make([][]wlist, len(kq.terms))
	for i, t := range kq.terms {
		for _, f := range kq.fields {
			k := termKey(scope, f, t)
			if list := ix.terms[k]; len(list) > 0 {
				groups[i] = append(groups[i], wlist{list, idf(len(list))})
			}
			if i != last {
				continue
			}
			expanded := 0
			for _, tk := range ix.heads[headKey(k)] {
				if tk == k || !strings.HasPrefix(tk, k) {
					continue
				}
				if expanded++; expanded > maxPrefixTerms {
					break
				}
				list := ix.terms[tk]
				groups[i] = append(groups[i], wlist{list, prefixWeight * idf(len(list))})
			}
		}
	}
	return groups
}

// search ranks the live advertisements of scope (and typ, when set) that
// match kq, and returns the best want of them, best first: by BM25, then by
// how many publishers offer the same advertisement ID. It visits at most
// maxPostingsPerQuery postings.
func (ix *index) search(kq *kwQuery, scope, typ string, now time.Time, want int) []hit {
	groups := ix.groups(kq, scope)
	avgdl := float64(ix.total) / float64(max(ix.live, 1))
	norm := func(tf uint16, dl uint16) float64 {
		f := float64(tf)
		return f * (bm25K1 + 1) / (f + bm25K1*(1-bm25B+bm25B*float64(dl)/max(avgdl, 1)))
	}
	top := &topK{k: want}
	consider := func(doc uint32, score float64) {
		e := ix.docs[doc]
		if e == nil || (typ != "" && e.ad.Type != typ) || !e.until.After(now) {
			return
		}
		top.offer(hit{e: e, until: e.until, score: score, pubs: ix.pubs[pubKey(&e.ad)]})
	}
	budget := maxPostingsPerQuery
	if kq.any {
		scores := map[uint32]float64{}
		for _, g := range groups {
			for _, wl := range g {
				for _, p := range wl.list[:min(len(wl.list), budget)] {
					if e := ix.docs[p.doc]; e != nil {
						scores[p.doc] += wl.w * norm(p.tf, e.dl)
					}
				}
				budget -= min(len(wl.list), budget)
			}
		}
		for doc, s := range scores {
			consider(doc, s)
		}
		return top.sorted()
	}
	// AND: walk the candidates of the rarest term, look the others up.
	driver, size := -1, 0
	for i, g := range groups {
		n := 0
		for _, wl := range g {
			n += len(wl.list)
		}
		if n == 0 {
			return nil
		}
		if driver < 0 || n < size {
			driver, size = i, n
		}
	}
	var cand []uint32
	for _, wl := range groups[driver] {
		for _, p := range wl.list {
			cand = append(cand, p.doc)
		}
	}
	if len(groups[driver]) > 1 {
		slices.Sort(cand)
		cand = slices.Compact(cand)
	}
	for _, doc := range cand {
		if budget <= 0 {
			break
		}
		e := ix.docs[doc]
		if e == nil {
			continue
		}
		score := 0.0
		for _, g := range groups {
			gs := 0.0
			for _, wl := range g {
				budget--
				if tf := lookup(wl.list, doc); tf > 0 {
					gs += wl.w * norm(tf, e.dl)
				}
			}
			if gs == 0 {
				score = -1
				break
			}
			score += gs
		}
		if score > 0 {
			consider(doc, score)
		}
	}
	return top.sorted()
}

// lookup returns doc's term frequency in list, 0 if absent.
func lookup(list []posting, doc uint32) uint16 {
	i, ok := slices.BinarySearchFunc(list, doc, func(p posting, d uint32) int { return cmp.Compare(p.doc, d) })
	if !ok {
		return 0
	}
	return list[i].tf
}

// rankCmp orders hits best first: score, publishers, newest, then key.
func rankCmp(a, b hit) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	if c := cmp.Compare(b.pubs, a.pubs); c != 0 {
		return c
	}
	if c := b.e.ad.Issued.Compare(a.e.ad.Issued); c != 0 {
		return c
	}
	return keyCmp(a.e.ad.Key(), b.e.ad.Key())
}

func keyCmp(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Publisher, b.Publisher))
}

// topK keeps the k best hits: a heap with the worst on top.
type topK struct {
	k int
	h []hit
}

func (t *topK) Len() int           { return len(t.h) }
func (t *topK) Less(i, j int) bool { return rankCmp(t.h[i], t.h[j]) > 0 }
func (t *topK) Swap(i, j int)      { t.h[i], t.h[j] = t.h[j], t.h[i] }
func (t *topK) Push(x any)         { t.h = append(t.h, x.(hit)) }
func (t *topK) Pop() any {
	x := t.h[len(t.h)-1]
	t.h = t.h[:len(t.h)-1]
	return x
}

func (t *topK) offer(h hit) {
	if t.k <= 0 {
		return
	}
	if len(t.h) < t.k {
		heap.Push(t, h)
		return
	}
	if rankCmp(h, t.h[0]) < 0 {
		t.h[0] = h
		heap.Fix(t, 0)
	}
}

func (t *topK) sorted() []hit {
	slices.SortFunc(t.h, rankCmp)
	return t.h
}
