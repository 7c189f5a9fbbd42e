package peer

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"golang.org/x/crypto/chacha20poly1305"
)

// SecurityChoice is the order in which a peer offers its two security
// protocols on TCP (QUIC always runs TLS 1.3 inside the transport). The dialer's
// first choice wins when the listener supports it, and both stay available, so
// any stock libp2p peer connects either way.
type SecurityChoice struct {
	// First is the protocol offered first: "noise" or "tls".
	First string
	// AESGCM and ChaCha20Poly1305 are the measured sealing rates in MB/s
	// (10^6 B/s) of 16 KiB buffers: the ciphers TLS 1.3 (AES-128-GCM, chosen
	// when the CPU has AES instructions) and Noise (ChaCha20-Poly1305) use.
	AESGCM, ChaCha20Poly1305 float64
	// Reason says in one line why First was chosen.
	Reason string
}

// tlsAdvantage is how much faster AES-GCM must seal than ChaCha20-Poly1305 for
// TLS to go first. The cipher is most of the difference: on a 2-core x86 VM
// with AES-NI, where AES-GCM sealed about 3× as fast, stock go-libp2p spent
// 1.7 CPU s per GiB through a TCP stream with TLS and 2.6 with Noise, and
// that gap is what sealing and opening each GiB with the two ciphers costs;
// the rest (framing, yamux, system calls) cost the same within noise (bench:
// the CPU per GiB rows). The margin covers TLS's smaller records (16 KiB
// against Noise's 64 KiB) and a measurement of a millisecond.
const tlsAdvantage = 1.25

var security struct {
	once   sync.Once
	choice SecurityChoice
}

// Security returns the security order this process uses, measuring the two
// ciphers on first use (about 2 ms) and caching the result for the life of
// the process.
func Security() SecurityChoice {
	security.once.Do(func() { security.choice = chooseSecurity(time.Millisecond) })
	return security.choice
}

// chooseSecurity seals 16 KiB buffers with each cipher for about d, best of
// three short rounds each (so a preempted round on a busy machine does not
// decide), and picks the order.
func chooseSecurity(d time.Duration) SecurityChoice {
	key := make([]byte, chacha20poly1305.KeySize)
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		panic(err) // a 16-byte key never fails
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	cc, err := chacha20poly1305.New(key)
	if err != nil {
		panic(err)
	}
	buf := make([]byte, 16<<10, 16<<10+gcm.Overhead())
	var a, c float64
	for range 3 {
		a = max(a, sealRate(gcm, buf, d/3))
		c = max(c, sealRate(cc, buf, d/3))
	}
	return decideSecurity(a, c)
}

func decideSecurity(aesRate, chachaRate float64) SecurityChoice {
	ch := SecurityChoice{First: "noise", AESGCM: aesRate, ChaCha20Poly1305: chachaRate}
	ratio := aesRate / chachaRate
	if ratio >= tlsAdvantage {
		ch.First = "tls"
		ch.Reason = fmt.Sprintf("AES-GCM (TLS) seals %.1f× as fast as ChaCha20-Poly1305 (Noise) here, %.0f against %.0f MB/s of 16 KiB buffers, at least the %.2f× that TLS needs", ratio, aesRate, chachaRate, tlsAdvantage)
		return ch
	}
	ch.Reason = fmt.Sprintf("AES-GCM (TLS) seals only %.1f× as fast as ChaCha20-Poly1305 (Noise) here, %.0f against %.0f MB/s of 16 KiB buffers, under the %.2f× that TLS needs", ratio, aesRate, chachaRate, tlsAdvantage)
	return ch
}

// sealRate seals buf in place-sized copies for at least d and returns MB/s.
func sealRate(a cipher.AEAD, buf []byte, d time.Duration) float64 {
	nonce := make([]byte, a.NonceSize())
	out := make([]byte, 0, len(buf)+a.Overhead())
	n := 0
	start := time.Now()
	var el time.Duration
	for el < d || n < 2 {
		a.Seal(out[:0], nonce, buf, nil)
		n++
		el = time.Since(start)
	}
	return float64(n*len(buf)) / el.Seconds() / 1e6
}

// securityOptions are the libp2p options for the chosen order.
func securityOptions(first string) []libp2p.Option {
	n := libp2p.Security(noise.ID, noise.New)
	t := libp2p.Security(libp2ptls.ID, newBatchTLS)
	if first == "tls" {
		return []libp2p.Option{t, n}
	}
	return []libp2p.Option{n, t}
}
