package discovery

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Keyword limits.
const (
	// MaxKeywords bounds the terms of a keyword query.
	MaxKeywords = 8
	// MaxKeywordAttrs bounds Query.KeywordAttrs.
	MaxKeywordAttrs = 8
	// MaxOffset bounds Query.Offset plus Query.Limit: deep pages cost a
	// super-peer a ranking of that many results.
	MaxOffset = 10_000
	// maxTokenBytes truncates longer tokens (at a rune boundary).
	maxTokenBytes = 64
	// maxTokensPerAd bounds the tokens one advertisement adds to the index.
	maxTokensPerAd = 256
)

// normalize folds case and composes s (NFC), so that text typed on a keyboard
// and names stored decomposed by macOS (NFD) compare equal.
func normalize(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	// Compose first so that folding sees whole characters, then again because
	// folding may decompose.
	return norm.NFC.String(cases.Fold().String(norm.NFC.String(s)))
}

// tokenize splits s into search tokens: Unicode word boundaries (UAX #29),
// then every run of letters, digits and marks inside a word, case folded and
// NFC composed. "Blue_Monday-01.MP3" gives blue, monday, 01, mp3; a Hangul
// name decomposed or composed gives the same tokens. yield returns false to
// stop.
func tokenize(s string, yield func(string) bool) {
	s = normalize(s)
	state := -1
	var word string
	for len(s) > 0 {
		word, s, state = uniseg.FirstWordInString(s, state)
		start := -1
		for i, r := range word {
			if isWordRune(r) {
				if start < 0 {
					start = i
				}
				continue
			}
			if start >= 0 {
				if !yield(truncToken(word[start:i])) {
					return
				}
				start = -1
			}
		}
		if start >= 0 && !yield(truncToken(word[start:])) {
			return
		}
	}
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

func truncToken(t string) string {
	if len(t) <= maxTokenBytes {
		return t
	}
	t = t[:maxTokenBytes]
	for len(t) > 0 && !utf8.ValidString(t) {
		t = t[:len(t)-1]
	}
	return t
}

// tokens returns the tokens of s, at most limit (0: no limit).
func tokens(s string, limit int) []string {
	var out []string
	tokenize(s, func(t string) bool {
		out = append(out, t)
		return limit == 0 || len(out) < limit
	})
	return out
}

// kwQuery is a parsed keyword query.
type kwQuery struct {
	terms  []string // normalized; the last one matches as a prefix
	fields []string // index fields searched: "*" or "=" + attribute
	any    bool     // rank advertisements matching any term, not only all
}

// anyField is the index field holding the tokens of every attribute.
const anyField = "*"

func attrField(attr string) string { return "=" + attr }

// parseKeywords parses q's keyword fields; it returns nil for a query without
// keywords.
func (q *Query) parseKeywords() (*kwQuery, error) {
	if q.Keywords == "" {
		if len(q.KeywordAttrs) > 0 || q.AnyKeyword {
			return nil, fmt.Errorf("%w: keyword options without keywords", ErrInvalid)
		}
		return nil, nil
	}
	if q.Attr != "" || q.Value != "" {
		return nil, fmt.Errorf("%w: a query has keywords or an attribute value, not both", ErrInvalid)
	}
	if len(q.KeywordAttrs) > MaxKeywordAttrs {
		return nil, fmt.Errorf("%w: %d keyword attributes, limit %d", ErrInvalid, len(q.KeywordAttrs), MaxKeywordAttrs)
	}
	kq := &kwQuery{terms: tokens(q.Keywords, MaxKeywords+1), any: q.AnyKeyword}
	switch {
	case len(kq.terms) == 0:
		return nil, fmt.Errorf("%w: keywords %q hold no word", ErrInvalid, q.Keywords)
	case len(kq.terms) > MaxKeywords:
		return nil, fmt.Errorf("%w: more than %d keywords", ErrInvalid, MaxKeywords)
	}
	// A word given twice counts once (the last stays a prefix).
	uniq := kq.terms[:0]
	for i, t := range kq.terms {
		if i == len(kq.terms)-1 || !slices.Contains(kq.terms[i+1:len(kq.terms)-1], t) {
			uniq = append(uniq, t)
		}
	}
	kq.terms = uniq
	if len(q.KeywordAttrs) == 0 {
		kq.fields = []string{anyField}
	}
	seen := map[string]bool{}
	for _, a := range q.KeywordAttrs {
		if len(a) > MaxQueryField {
			return nil, fmt.Errorf("%w: keyword attribute of %d bytes, limit %d", ErrInvalid, len(a), MaxQueryField)
		}
		if !seen[a] {
			seen[a] = true
			kq.fields = append(kq.fields, attrField(a))
		}
	}
	return kq, nil
}

// matches reports whether ad's attributes hold the query's terms (all of them,
// or any with AnyKeyword), the last as a prefix. Answers from remote peers are
// checked with it, and Watch filters with it.
func (kq *kwQuery) matches(ad *Advertisement) bool { return kq.matchesIn(maps.All(ad.Attrs)) }

func (kq *kwQuery) matchesIn(attrs iter.Seq2[string, string]) bool {
	found := make([]bool, len(kq.terms))
	last := len(kq.terms) - 1
	for attr, v := range attrs {
		if !kq.searches(attr) {
			continue
		}
		tokenize(v, func(tok string) bool {
			for i, t := range kq.terms {
				if tok == t || (i == last && strings.HasPrefix(tok, t)) {
					found[i] = true
				}
			}
			return true
		})
	}
	n := 0
	for _, f := range found {
		if f {
			n++
		}
	}
	if kq.any {
		return n > 0
	}
	return n == len(found)
}

func (kq *kwQuery) searches(attr string) bool {
	for _, f := range kq.fields {
		if f == anyField || f == attrField(attr) {
			return true
		}
	}
	return false
}
