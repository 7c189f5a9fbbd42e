package farm

import (
	"encoding/base32"
	"fmt"
	"strings"
)

// The farm pipe carries CBOR frames, at most MaxFrame bytes each, in both
// directions. A connection starts with the dialer's hello, which says its
// role. Requests that expect an answer carry a sequence number (Seq) that
// the answer repeats.
//
//	provider → scheduler: hello(profile, holding), want, started, reports
//	scheduler → provider: grant, ack
//	client → scheduler:   hello, submit, add, watch, cancel, status, unit
//	scheduler → client:   ok (job ID), results (pushed as committed), stats, error
const (
	tHello   uint8 = 1
	tWant    uint8 = 2
	tStarted uint8 = 3
	tReports uint8 = 4
	tGrant   uint8 = 5
	tAck     uint8 = 6
	tSubmit  uint8 = 7
	tAdd     uint8 = 8
	tWatch   uint8 = 9
	tCancel  uint8 = 10
	tStatus  uint8 = 11
	tOK      uint8 = 12
	tResults uint8 = 13
	tStats   uint8 = 14
	tError   uint8 = 15
	tUnit    uint8 = 16
)

// Roles in a hello.
const (
	roleProvider = "provider"
	roleClient   = "client"
)

type frame struct {
	T       uint8        `cbor:"1,keyasint"`
	Seq     uint64       `cbor:"2,keyasint,omitempty"`
	Role    string       `cbor:"3,keyasint,omitempty"`
	Profile *Profile     `cbor:"4,keyasint,omitempty"`
	Holding []InstanceID `cbor:"5,keyasint,omitempty"`
	N       int          `cbor:"6,keyasint,omitempty"` // want; unit index
	IDs     []InstanceID `cbor:"7,keyasint,omitempty"` // started
	Reports []Report     `cbor:"8,keyasint,omitempty"`
	Grant   []Assignment `cbor:"9,keyasint,omitempty"`
	Job     *JobSpec     `cbor:"10,keyasint,omitempty"`
	JobID   string       `cbor:"11,keyasint,omitempty"`
	Units   []UnitSpec   `cbor:"12,keyasint,omitempty"`
	After   uint64       `cbor:"13,keyasint,omitempty"`
	Results []Result     `cbor:"14,keyasint,omitempty"`
	Done    bool         `cbor:"15,keyasint,omitempty"`
	Err     string       `cbor:"16,keyasint,omitempty"`
	Stats   *Stats       `cbor:"17,keyasint,omitempty"`
	Unit    *UnitInfo    `cbor:"18,keyasint,omitempty"`
}

func encodeFrame(f *frame) ([]byte, error) {
	b, err := enc.Marshal(f)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes (at most %d)", ErrTooLarge, len(b), MaxFrame)
	}
	return b, nil
}

// decodeFrame parses and bounds one frame from a member.
func decodeFrame(b []byte) (*frame, error) {
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes (at most %d)", ErrTooLarge, len(b), MaxFrame)
	}
	var f frame
	if err := dec.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if f.T < tHello || f.T > tUnit {
		return nil, fmt.Errorf("%w: type %d", ErrBadFrame, f.T)
	}
	if len(f.Units) > MaxUnitsPerFrame || len(f.Holding) > 4*MaxSlots || len(f.IDs) > 4*MaxSlots || len(f.Reports) > 4*MaxSlots {
		return nil, fmt.Errorf("%w: too many entries", ErrTooLarge)
	}
	if f.Profile != nil {
		f.Profile.sanitize()
	}
	return &f, nil
}

// DecodeJob parses a submit frame's job and units as the scheduler does,
// with every bound checked: the decoder a hostile client meets.
func DecodeJob(b []byte) (JobSpec, []UnitSpec, error) {
	f, err := decodeFrame(b)
	if err != nil {
		return JobSpec{}, nil, err
	}
	if f.T != tSubmit || f.Job == nil {
		return JobSpec{}, nil, fmt.Errorf("%w: not a job", ErrBadFrame)
	}
	spec := *f.Job
	if err := spec.Task.normalize(); err != nil {
		return JobSpec{}, nil, err
	}
	for i := range f.Units {
		if err := f.Units[i].normalize(); err != nil {
			return JobSpec{}, nil, fmt.Errorf("unit %d: %w", i, err)
		}
	}
	return spec, f.Units, nil
}

// DecodeReports parses a provider's reports frame as the scheduler does:
// the decoder a hostile provider meets.
func DecodeReports(b []byte) ([]Report, error) {
	f, err := decodeFrame(b)
	if err != nil {
		return nil, err
	}
	if f.T != tReports {
		return nil, fmt.Errorf("%w: not reports", ErrBadFrame)
	}
	for _, r := range f.Reports {
		if len(r.Output) > MaxOutput || len(r.Err) > MaxErrorText {
			return nil, fmt.Errorf("%w: report of %d bytes", ErrTooLarge, len(r.Output))
		}
	}
	return f.Reports, nil
}

// The farm invite: a kind prefix and base32 of the group's signed
// advertisement, the password, and the scheduler's peer invite.
const invitePrefix = "juxtafarm1"

// MaxInvite bounds an invite string.
const MaxInvite = 32 << 10

type inviteBody struct {
	Group     []byte `cbor:"1,keyasint"`
	Password  string `cbor:"2,keyasint"`
	Scheduler string `cbor:"3,keyasint"`
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func encodeInvite(b inviteBody) string {
	return invitePrefix + strings.ToLower(b32.EncodeToString(mustEnc(b)))
}

func parseInvite(s string) (inviteBody, error) {
	s = strings.TrimSpace(s)
	var b inviteBody
	if len(s) > MaxInvite {
		return b, fmt.Errorf("%w: longer than %d bytes", ErrBadInvite, MaxInvite)
	}
	if !strings.HasPrefix(s, invitePrefix) {
		return b, fmt.Errorf("%w: it does not start with %q", ErrBadInvite, invitePrefix)
	}
	raw, err := b32.DecodeString(strings.ToUpper(s[len(invitePrefix):]))
	if err != nil {
		return b, fmt.Errorf("%w: %v (was it cut short?)", ErrBadInvite, err)
	}
	if err := dec.Unmarshal(raw, &b); err != nil || len(b.Group) == 0 || b.Scheduler == "" {
		return b, fmt.Errorf("%w: damaged contents", ErrBadInvite)
	}
	return b, nil
}
