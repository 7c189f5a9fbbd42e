package discovery

import (
	"errors"
	"testing"
	"time"
)

// VerifyKept refuses every bad advertisement Verify refuses, for the same
// reason, except one whose lifetime has ended: a kept advertisement stays
// its publisher's after that.
func TestVerifyKeptRefusesAllButExpired(t *testing.T) {
	self, _ := secNewKey(t)
	keys := secKeysFor(t, self)
	for _, c := range secCases {
		t.Run(c.name, func(t *testing.T) {
			raw, key := c.make(t, keys, "v")
			ad, err := VerifyKept(raw, time.Now())
			if c.reason == DropExpired || c.reason == DropScope || c.publishOnly {
				if err != nil {
					t.Fatalf("kept advertisement refused: %v", err)
				}
				if ad.Key() != key {
					t.Fatalf("verified %+v, want key %+v", ad.Key(), key)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified: %+v", ad)
			}
			if !errors.Is(err, ErrRejected) || errors.Is(err, ErrExpired) {
				t.Errorf("error %v: want ErrRejected, not ErrExpired", err)
			}
			if got := dropReason(err); got != c.reason {
				t.Errorf("reason %q, want %q (err %v)", got, c.reason, err)
			}
		})
	}
}

// The same envelope, judged a day after its lifetime ended: Verify refuses
// it as expired, VerifyKept returns it whole; dated in the future at an
// earlier now, both refuse it.
func TestVerifyKeptAtLaterNow(t *testing.T) {
	self, selfID := secNewKey(t)
	issued := time.Now().Truncate(time.Millisecond)
	ad := secAd("kept", "v", selfID)
	ad.Issued, ad.Lifetime = issued, DefaultLifetime
	raw := secSeal(t, ad, self)
	later := issued.Add(DefaultLifetime + 24*time.Hour)

	if _, err := Verify(raw, later); !errors.Is(err, ErrExpired) || dropReason(err) != DropExpired {
		t.Fatalf("Verify after the lifetime: %v", err)
	}
	got, err := VerifyKept(raw, later)
	if err != nil {
		t.Fatalf("VerifyKept after the lifetime: %v", err)
	}
	if got.Key() != ad.Key() || got.Seq != ad.Seq || !got.Issued.Equal(issued) || string(got.Body) != string(ad.Body) {
		t.Fatalf("VerifyKept returned %+v, want %+v", got, ad)
	}
	earlier := issued.Add(-MaxClockSkew - time.Minute)
	for name, verify := range map[string]func([]byte, time.Time) (Advertisement, error){"Verify": Verify, "VerifyKept": VerifyKept} {
		if _, err := verify(raw, earlier); dropReason(err) != DropFuture {
			t.Errorf("%s of an advertisement dated after now: %v", name, err)
		}
	}
	// A tampered envelope is no more acceptable for being old.
	bad := append([]byte(nil), raw...)
	bad[len(bad)-1] ^= 1
	if _, err := VerifyKept(bad, later); !errors.Is(err, ErrRejected) || dropReason(err) != DropBadSignature {
		t.Fatalf("VerifyKept of a tampered envelope: %v", err)
	}
}
