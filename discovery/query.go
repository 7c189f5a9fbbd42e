package discovery

import (
	"bytes"
	"fmt"
	"iter"
	"maps"
	"strings"
)

// Query selects advertisements by type and either one attribute (Attr and
// Value, a glob) or keywords (Keywords, ranked).
type Query struct {
	// Scope is the group to search; "" is the net group. Advertisements of
	// other scopes never match.
	Scope string
	// Type is the advertisement type; "" matches every type.
	Type string
	// Attr is the attribute to match; "" matches Value against every attribute
	// (and matches everything when Value is "" or "*").
	Attr string
	// Value is matched case-insensitively; '*' stands for any run of characters.
	Value string
	// Keywords, when set, makes this a keyword query: the words of Keywords
	// must all appear among the attributes' words (AnyKeyword: any of them),
	// the last word as a prefix ("blue mon" finds "Blue Monday.mp3"). Words are
	// split at Unicode word boundaries and punctuation, case folded and NFC
	// normalized, so that Hangul typed composed finds names stored decomposed
	// (macOS), accents and case aside. Results are ranked by BM25, then by how
	// many publishers offer an advertisement of the same type and ID (give a
	// file's content hash as its ID to have copies counted). Attr and Value must
	// be empty. At most MaxKeywords words.
	Keywords string
	// KeywordAttrs are the attributes Keywords searches; empty means all.
	KeywordAttrs []string
	// AnyKeyword ranks advertisements that hold any of the keywords, not only
	// all: those holding more rank higher.
	AnyKeyword bool
	// Offset skips that many of the best results, at each source: with Limit,
	// a page. Offset+Limit is at most MaxOffset.
	Offset int
	// Limit bounds the results; 0 means DefaultLimit.
	Limit int
	// TTL is how many times a super-peer (or, when flooding, a neighbour) may
	// forward the query onward. 0 means DefaultTTL; NoForward means none: a
	// super-peer answers from its own index only.
	TTL int
	// Sources selects where Find looks; 0 means DefaultSources.
	Sources Source

	kw  *kwQuery     // parsed Keywords; set by normalize
	pat *globPattern // compiled Value; set by normalize
}

// Query defaults and limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	DefaultTTL   = 3
	MaxTTL       = 7
	// NoForward, as Query.TTL, stops super-peers from forwarding the query.
	NoForward = -1
	// MaxQueryField bounds each string field of a query.
	MaxQueryField = 256
)

// Source is a set of places Find looks, nearest first.
type Source uint8

const (
	// SourceLocal is this peer's cache, its own advertisements included.
	SourceLocal Source = 1 << iota
	// SourceLAN asks neighbours on the LAN: peers found by mDNS, and any peer
	// connected directly over a private or loopback address.
	SourceLAN
	// SourceSuperPeers asks the connected super-peers, which answer from their
	// index and forward misses to the super-peers they know (TTL).
	SourceSuperPeers
	// SourceFlood floods the query hop by hop among connected peers, with a TTL
	// and duplicate suppression (Gnutella). Peers forward it only if their own
	// Config.Flood is on.
	SourceFlood
	// SourceDHT looks an exact key (Attr set, Value without '*') up in the DHT's
	// provider records and fetches the advertisement from a provider.
	SourceDHT

	// DefaultSources is every source but flooding.
	DefaultSources = SourceLocal | SourceLAN | SourceSuperPeers | SourceDHT
)

func (s Source) String() string {
	var parts []string
	for _, x := range []struct {
		s    Source
		name string
	}{{SourceLocal, "local"}, {SourceLAN, "lan"}, {SourceSuperPeers, "super-peers"}, {SourceFlood, "flood"}, {SourceDHT, "dht"}} {
		if s&x.s != 0 {
			parts = append(parts, x.name)
		}
	}
	return strings.Join(parts, "|")
}

func (q *Query) normalize() error {
	for _, f := range []string{q.Scope, q.Type, q.Attr, q.Value, q.Keywords} {
		if len(f) > MaxQueryField {
			return fmt.Errorf("%w: query field of %d bytes, limit %d", ErrInvalid, len(f), MaxQueryField)
		}
	}
	kw, err := q.parseKeywords()
	if err != nil {
		return err
	}
	q.kw = kw
	q.pat = compileGlob(q.Value)
	switch {
	case q.Offset < 0:
		return fmt.Errorf("%w: negative offset", ErrInvalid)
	case q.Limit < 0:
		return fmt.Errorf("%w: negative limit", ErrInvalid)
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	switch {
	case q.TTL == NoForward:
		q.TTL = 0
	case q.TTL == 0:
		q.TTL = DefaultTTL
	case q.TTL < 0:
		return fmt.Errorf("%w: TTL %d", ErrInvalid, q.TTL)
	case q.TTL > MaxTTL:
		q.TTL = MaxTTL
	}
	if q.Offset+q.Limit > MaxOffset {
		return fmt.Errorf("%w: offset %d and limit %d, limit %d in all", ErrInvalid, q.Offset, q.Limit, MaxOffset)
	}
	if q.Sources == 0 {
		q.Sources = DefaultSources
	}
	return nil
}

// exact reports whether the query names one attribute value, so that the DHT
// can answer it.
func (q *Query) exact() bool {
	return q.kw == nil && q.Type != "" && q.Attr != "" && q.Value != "" && !strings.Contains(q.Value, "*")
}

func (q *Query) matches(a *Advertisement) bool {
	return q.matchesIn(a.Scope, a.Type, maps.All(a.Attrs))
}

func (q *Query) matchesEntry(e *entry) bool {
	return q.matchesIn(e.ad.Scope, e.ad.Type, e.attrSeq())
}

func (q *Query) matchesIn(scope, typ string, attrs iter.Seq2[string, string]) bool {
	if scope != q.Scope || (q.Type != "" && typ != q.Type) {
		return false
	}
	if q.kw != nil {
		return q.kw.matchesIn(attrs)
	}
	pat := q.pat
	if pat == nil {
		pat = compileGlob(q.Value)
	}
	if q.Attr != "" {
		for k, v := range attrs {
			if k == q.Attr {
				return pat.match(v)
			}
		}
		return false
	}
	if q.Value == "" || q.Value == "*" {
		return true
	}
	for _, v := range attrs {
		if pat.match(v) {
			return true
		}
	}
	return false
}

// glob matches s against pattern, where '*' matches any run of characters, case
// insensitively. An empty pattern matches only the empty string.
func glob(pattern, s string) bool { return compileGlob(pattern).match(s) }

// globPattern is a glob lowered and split at '*' once per query, not once
// per attribute value: a query over every attribute of 10,000 advertisements
// matches 320,000 values, and the garbage of splitting the pattern for each
// doubled a super-peer's heap under a glob attack (issue 12, item 4).
type globPattern struct {
	exact bool     // no '*'
	parts [][]byte // lowered, split at '*'
}

func compileGlob(pattern string) *globPattern {
	ss := strings.Split(strings.ToLower(pattern), "*")
	g := &globPattern{exact: len(ss) == 1, parts: make([][]byte, len(ss))}
	for i, p := range ss {
		g.parts[i] = []byte(p)
	}
	return g
}

// globBuf bounds the values match lowers on the stack; longer or non-ASCII
// values are lowered with strings.ToLower.
const globBuf = 256

// match reports whether s matches, case-insensitively. A short ASCII value
// is lowered into a stack buffer: matching it allocates nothing.
func (g *globPattern) match(s string) bool {
	var buf [globBuf]byte
	var b []byte
	if len(s) <= globBuf && isASCII(s) {
		b = buf[:len(s)]
		for i := range len(s) {
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
		}
	} else {
		b = []byte(strings.ToLower(s))
	}
	parts := g.parts
	if g.exact {
		return bytes.Equal(parts[0], b)
	}
	if !bytes.HasPrefix(b, parts[0]) {
		return false
	}
	b = b[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := bytes.Index(b, p)
		if i < 0 {
			return false
		}
		b = b[i+len(p):]
	}
	return bytes.HasSuffix(b, parts[len(parts)-1])
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
