package discovery

import (
	"cmp"
	"container/heap"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
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
	dls   []uint16             // by document number: its length in tokens; 0 once removed
	live  int                  // documents not removed
	dead  int                  // removed documents still in postings
	total int                  // tokens of live documents, for the average length
	terms map[string][]posting // postings in increasing document order
	heads map[string][]string  // "scope\x00field\x00" + first rune → term keys, for prefixes
	pubs  map[string]*offers   // "scope\x00type\x00id" → its publishers; shared by their entries
}

// offers counts the live documents of one scope, type and ID: the publishers
// offering it.
type offers struct{ n int }

type posting struct {
	doc uint32
	tf  uint16
}

// Search bounds, so that no query holds the cache for long.
const (
	// maxPostingsPerQuery bounds the postings one keyword query visits (a
	// few milliseconds of work).
	maxPostingsPerQuery = 4_000_000
	// maxPrefixTerms bounds the terms a prefix expands to.
	maxPrefixTerms = 512
	// prefixWeight discounts a term matched by prefix against an exact one.
	prefixWeight = 0.9
	// BM25 parameters.
	bm25K1 = 1.2
	bm25B  = 0.75
)

func newIndex() *index {
	return &index{terms: map[string][]posting{}, heads: map[string][]string{}, pubs: map[string]*offers{}}
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
	ix.dls = append(ix.dls, 0)
	e.doc = doc
	tf := map[string]uint16{}
	n := 0
	for attr, v := range e.attrSeq() {
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
	ix.dls[doc] = e.dl
	ix.live++
	ix.total += n
	pk := pubKey(&e.ad)
	o := ix.pubs[pk]
	if o == nil {
		o = &offers{}
		ix.pubs[pk] = o
	}
	o.n++
	e.offers = o
}

// remove forgets e; its postings go at the next compaction.
func (ix *index) remove(e *entry) {
	if int(e.doc) >= len(ix.docs) || ix.docs[e.doc] != e {
		return
	}
	ix.docs[e.doc] = nil
	ix.dls[e.doc] = 0
	ix.live--
	ix.dead++
	ix.total -= int(e.dl)
	if e.offers.n--; e.offers.n <= 0 {
		delete(ix.pubs, pubKey(&e.ad))
	}
	if ix.dead > max(ix.live, 4096) {
		ix.compact()
	}
}

// compact renumbers the live documents and drops the dead from the postings.
func (ix *index) compact() {
	renum := make([]uint32, len(ix.docs))
	docs := make([]*entry, 0, ix.live)
	dls := make([]uint16, 0, ix.live)
	for i, e := range ix.docs {
		if e != nil {
			renum[i] = uint32(len(docs))
			e.doc = uint32(len(docs))
			docs = append(docs, e)
			dls = append(dls, e.dl)
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
	ix.docs, ix.dls = docs, dls
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
		top.offer(hit{e: e, until: e.until, score: score, pubs: e.offers.n})
	}
	budget := maxPostingsPerQuery
	if kq.any {
		scores := map[uint32]float64{}
		for _, g := range groups {
			for _, wl := range g {
				for _, p := range wl.list[:min(len(wl.list), budget)] {
					if dl := ix.dls[p.doc]; dl > 0 {
						scores[p.doc] += wl.w * norm(p.tf, dl)
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
	// AND: the candidates are the documents of the rarest term; each other
	// term, rarest first, keeps those it holds.
	cs, ok := ix.and(groups, norm, budget)
	if !ok {
		return nil
	}
	for _, c := range cs {
		consider(c.doc, c.score)
	}
	return top.sorted()
}

type cand struct {
	doc   uint32
	score float64
}

// and intersects the groups: documents found in every group, with their
// summed scores. Each posting list is joined with the candidates by a merge
// or by binary searches, whichever costs less. It reports false when the
// work would exceed budget.
func (ix *index) and(groups [][]wlist, norm func(tf, dl uint16) float64, budget int) ([]cand, bool) {
	sizes := make([]int, len(groups))
	order := make([]int, len(groups))
	for i, g := range groups {
		for _, wl := range g {
			sizes[i] += len(wl.list)
		}
		if sizes[i] == 0 {
			return nil, true
		}
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(sizes[a], sizes[b]) })
	driver := groups[order[0]]
	if budget -= sizes[order[0]]; budget < 0 {
		return nil, false
	}
	var cs []cand
	for _, wl := range driver {
		for _, p := range wl.list {
			if dl := ix.dls[p.doc]; dl > 0 {
				cs = append(cs, cand{p.doc, wl.w * norm(p.tf, dl)})
			}
		}
	}
	if len(driver) > 1 {
		slices.SortFunc(cs, func(a, b cand) int { return cmp.Compare(a.doc, b.doc) })
		out := cs[:0]
		for _, c := range cs {
			if n := len(out); n > 0 && out[n-1].doc == c.doc {
				out[n-1].score += c.score
				continue
			}
			out = append(out, c)
		}
		cs = out
	}
	add := make([]float64, len(cs))
	for _, gi := range order[1:] {
		if len(cs) == 0 {
			return nil, true
		}
		add = add[:len(cs)]
		clear(add)
		// pos maps a document to its candidate (index+1), so that a long
		// list is scanned once; a short candidate set is looked up instead.
		pos := scratch(len(ix.docs))
		for i, c := range cs {
			pos[c.doc] = int32(i + 1)
		}
		for _, wl := range groups[gi] {
			n, m := len(wl.list), len(cs)
			if budget -= min(n, m*bits.Len(uint(n))); budget < 0 {
				release(pos, cs)
				return nil, false
			}
			if n <= m*bits.Len(uint(n)) {
				for _, p := range wl.list {
					if i := pos[p.doc]; i > 0 {
						add[i-1] += wl.w * norm(p.tf, ix.dls[p.doc])
					}
				}
				continue
			}
			for i, c := range cs {
				if tf := lookup(wl.list, c.doc); tf > 0 {
					add[i] += wl.w * norm(tf, ix.dls[c.doc])
				}
			}
		}
		release(pos, cs)
		out := cs[:0]
		for i, c := range cs {
			if add[i] > 0 {
				c.score += add[i]
				out = append(out, c)
			}
		}
		cs = out
	}
	return cs, true
}

var scratchPool sync.Pool // *[]int32, zeroed

// scratch returns a zeroed []int32 of at least n elements.
func scratch(n int) []int32 {
	if p, ok := scratchPool.Get().(*[]int32); ok && len(*p) >= n {
		return *p
	}
	return make([]int32, n+n/4)
}

// release zeroes what cs set in pos and returns it to the pool.
func release(pos []int32, cs []cand) {
	for _, c := range cs {
		pos[c.doc] = 0
	}
	scratchPool.Put(&pos)
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
