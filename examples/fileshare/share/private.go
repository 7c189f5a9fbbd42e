package share

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/text/unicode/norm"

	"github.com/juxta-p2p/juxta/discovery"
)

// A group's advertisements are published in the group's discovery scope,
// but a scope is only a name: anyone who knows the group's ID (it is in the
// group's public advertisement) could ask a super-peer for the scope's
// advertisements. So a group's file advertisements say nothing in clear:
//
//   - the keywords are a blind index: each word becomes HMAC-SHA256(index
//     key, word), cut to 16 hex digits, and members search with the same
//     tokens (whole words only: a prefix of a blinded word matches nothing);
//   - the advertisement ID is the blinded content ID;
//   - the name, path, size, kind, content ID and share link travel sealed
//     (XChaCha20-Poly1305) in the body.
//
// Both keys come from the group's password by HKDF-SHA256 with the group ID
// as salt, so only members can search, read or recognise a group's files.
// The super-peer indexes tokens it cannot read. (An offline guess of a weak
// password is possible for whoever holds the group advertisement, as with
// the groups package's verifier.)

// groupKeys are a group's keys for its private advertisements.
type groupKeys struct {
	index [32]byte // blinds keywords and IDs
	seal  [32]byte // seals bodies
}

func deriveGroupKeys(password, groupID string) (*groupKeys, error) {
	r := hkdf.New(sha256.New, []byte(password), []byte(groupID), []byte("juxta fileshare group advertisements v1"))
	k := &groupKeys{}
	if _, err := io.ReadFull(r, k.index[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, k.seal[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// blind is a word's or an ID's token.
func (k *groupKeys) blind(s string) string {
	m := hmac.New(sha256.New, k.index[:])
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// blindWords blinds every word of text as Keywords splits it.
func (k *groupKeys) blindWords(text string) string {
	var out []string
	for _, w := range strings.Fields(Keywords(norm.NFC.String(text))) {
		out = append(out, k.blind("w:"+w))
	}
	return strings.Join(out, " ")
}

func (k *groupKeys) blindID(id string) string { return k.blind("id:" + id) }

func (k *groupKeys) sealBody(v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte("fileshare")), nil
}

var errSealed = errors.New("share: sealed advertisement does not open")

func (k *groupKeys) openBody(b []byte, v any) error {
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return err
	}
	if len(b) < aead.NonceSize()+aead.Overhead() || len(b) > maxAdLink+4096 {
		return errSealed
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte("fileshare"))
	if err != nil {
		return errSealed
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %v", errSealed, err)
	}
	return nil
}

// privateAd turns a file advertisement into a group's private one.
func (k *groupKeys) privateAd(f File) (discovery.Advertisement, error) {
	if f.Kind == "" {
		f.Kind = KindOf(f.Name)
	}
	body, err := k.sealBody(f)
	if err != nil {
		return discovery.Advertisement{}, err
	}
	kw := k.blindWords(f.Rel) + " " + k.blindWords(f.Name)
	return discovery.Advertisement{Type: AdType, ID: k.blindID(f.ID), Body: body,
		Attrs: map[string]string{AttrKeywords: clip(kw, maxKeywords*2), AttrID: k.blindID(f.ID)}}, nil
}

// openAd reads a group's private file advertisement.
func (k *groupKeys) openAd(ad discovery.Advertisement) (File, error) {
	var f File
	if err := k.openBody(ad.Body, &f); err != nil {
		return File{}, err
	}
	if f.ID == "" || ad.ID != k.blindID(f.ID) || f.Size < 0 || len(f.Link) > maxAdLink {
		return File{}, fmt.Errorf("%w: its sealed content does not match it", ErrBadAd)
	}
	switch f.Kind {
	case "audio", "video", "image", "document", "archive", "program", "other":
	default:
		f.Kind = KindOf(f.Name)
	}
	return f, nil
}
