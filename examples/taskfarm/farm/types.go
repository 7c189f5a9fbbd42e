package farm

import (
	"errors"
	"fmt"
	"time"
)

// State is where one work unit stands in the scheduler's state machine:
//
//	queued → assigned → running → reported → validated
//	   ↑        │          │          │
//	   └────────┴──────────┴──────────┘  deadline missed, provider offline,
//	                                     results disagree, run failed
//	                                     → failed after too many attempts
type State uint8

// Unit states.
const (
	Queued    State = 1 // waiting for a provider (Unit.Reason says why, when stuck)
	Assigned  State = 2 // every instance it needs is handed out; none started yet
	Running   State = 3 // a provider said it started
	Reported  State = 4 // some results are in; the quorum is not reached yet
	Validated State = 5 // a quorum of results agreed bit for bit (terminal)
	Failed    State = 6 // too many errors or disagreements, or cancelled (terminal)
)

var stateNames = [...]string{"", "queued", "assigned", "running", "reported", "validated", "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// Terminal reports whether s is an end state.
func (s State) Terminal() bool { return s == Validated || s == Failed }

// Task kinds.
const (
	KindWasm   = "wasm"   // a wasip1 module run by wazero
	KindNative = "native" // a Go function registered by name on the provider
)

// Task is what every unit of a job runs: a wasip1 module (by content
// reference) or, in trusted farms, a native Go function registered by name on
// the providers. Both read the unit's input and return its output.
type Task struct {
	Kind   string `cbor:"1,keyasint"`
	Name   string `cbor:"2,keyasint,omitempty"` // native function name
	Module Ref    `cbor:"3,keyasint,omitempty"` // wasm module (KindWasm)
	// Size is the module's length in bytes; providers refuse larger than
	// their MaxModule before fetching.
	Size int64 `cbor:"4,keyasint,omitempty"`
	// MemoryPages caps a wasm unit's linear memory, in 64 KiB pages.
	// Default 1024 (64 MiB); at most MaxMemoryPages.
	MemoryPages uint32 `cbor:"5,keyasint,omitempty"`
	// Timeout is the wall-clock limit of one run. Default 1 minute.
	Timeout time.Duration `cbor:"6,keyasint,omitempty"`
}

// Requirements are what a provider must have to be handed a unit.
type Requirements struct {
	MinMemory uint64 `cbor:"1,keyasint,omitempty"` // bytes of total memory
	MinCores  int    `cbor:"2,keyasint,omitempty"`
	MinDisk   uint64 `cbor:"3,keyasint,omitempty"` // bytes free
	OS        string `cbor:"4,keyasint,omitempty"` // GOOS, "" for any
	Arch      string `cbor:"5,keyasint,omitempty"` // GOARCH, "" for any
}

// Unmet says which requirement p fails, or "" when p meets them all.
func (r Requirements) Unmet(p Profile) string {
	switch {
	case r.MinMemory > p.Memory:
		return fmt.Sprintf("needs %d MiB of memory, provider has %d MiB", r.MinMemory>>20, p.Memory>>20)
	case r.MinCores > p.Cores:
		return fmt.Sprintf("needs %d cores, provider has %d", r.MinCores, p.Cores)
	case r.MinDisk > p.DiskFree:
		return fmt.Sprintf("needs %d MiB of free disk, provider has %d MiB", r.MinDisk>>20, p.DiskFree>>20)
	case r.OS != "" && r.OS != p.OS:
		return fmt.Sprintf("needs OS %s, provider runs %s", r.OS, p.OS)
	case r.Arch != "" && r.Arch != p.Arch:
		return fmt.Sprintf("needs arch %s, provider is %s", r.Arch, p.Arch)
	}
	return ""
}

// UnitSpec is one work unit as a client submits it.
type UnitSpec struct {
	Input []byte       `cbor:"1,keyasint,omitempty"`
	Req   Requirements `cbor:"2,keyasint,omitempty"`
	// Priority orders the queue: higher first, FIFO among equals.
	Priority int `cbor:"3,keyasint,omitempty"`
	// Deadline is how long a provider has to report after it is handed the
	// unit; then the unit is re-issued elsewhere. Default 5 minutes.
	Deadline time.Duration `cbor:"4,keyasint,omitempty"`
	// Estimate is the work in reference seconds (seconds on a host whose
	// benchmark scores RefScore); the scheduler hands a provider no more than
	// it can finish by the deadline at its measured speed. 0: unknown.
	Estimate float64 `cbor:"5,keyasint,omitempty"`
	// Quorum is how many results must agree bit for bit. Default 1.
	Quorum int `cbor:"6,keyasint,omitempty"`
	// MaxAttempts bounds instances that end without a usable result (errors,
	// missed deadlines, lost providers) and disagreements. Default 5.
	MaxAttempts int `cbor:"7,keyasint,omitempty"`
}

// JobSpec is a job as a client submits it.
type JobSpec struct {
	Name string `cbor:"1,keyasint"`
	Task Task   `cbor:"2,keyasint"`
	// Adaptive lets a trusted provider (one with a run of valid results and
	// never outvoted) run a unit alone, with random spot checks, so that the
	// replication overhead drops below Quorum×.
	Adaptive bool `cbor:"3,keyasint,omitempty"`
}

// Limits on what a member may send; a frame that breaks one is refused with
// a clear error and changes nothing.
const (
	MaxFrame         = 1 << 20 // bytes of one frame on the farm pipe
	MaxInput         = 256 << 10
	MaxOutput        = 512 << 10
	MaxUnitsPerFrame = 4096
	MaxUnitsPerJob   = 1 << 20
	MaxJobsPerClient = 64
	MaxQuorum        = 7
	MaxAttemptsCap   = 50
	MaxSlots         = 256 // slots a provider may claim
	MaxName          = 128
	MaxMemoryPages   = 65536 // 4 GiB, wasm32's whole space
	MaxDeadline      = 30 * 24 * time.Hour
	MaxErrorText     = 1024
)

// Defaults for a unit.
const (
	DefaultDeadline    = 5 * time.Minute
	DefaultMaxAttempts = 5
	DefaultMemoryPages = 1024
	DefaultTimeout     = time.Minute
)

// Errors.
var (
	ErrClosed      = errors.New("farm: closed")
	ErrBadFrame    = errors.New("farm: malformed frame")
	ErrTooLarge    = errors.New("farm: too large")
	ErrUnknownJob  = errors.New("farm: unknown job")
	ErrNoScheduler = errors.New("farm: no scheduler found")
	ErrBadInvite   = errors.New("farm: bad farm invite")
	ErrRefused     = errors.New("farm: refused by the scheduler")
	ErrNoTask      = errors.New("farm: no such native task")
	ErrSandbox     = errors.New("farm: unit failed in the sandbox")
)

// normalize fills defaults and checks bounds.
func (t *Task) normalize() error {
	switch t.Kind {
	case KindWasm:
		if t.Module.IsZero() {
			return fmt.Errorf("%w: a wasm task needs a module", ErrBadFrame)
		}
	case KindNative:
		if t.Name == "" || len(t.Name) > MaxName {
			return fmt.Errorf("%w: a native task needs a name of at most %d bytes", ErrBadFrame, MaxName)
		}
	default:
		return fmt.Errorf("%w: task kind %q (want %q or %q)", ErrBadFrame, t.Kind, KindWasm, KindNative)
	}
	if t.MemoryPages == 0 {
		t.MemoryPages = DefaultMemoryPages
	}
	if t.MemoryPages > MaxMemoryPages {
		return fmt.Errorf("%w: memory cap %d pages > %d", ErrTooLarge, t.MemoryPages, MaxMemoryPages)
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	if t.Timeout > MaxDeadline || t.Size < 0 {
		return fmt.Errorf("%w: task timeout or size out of range", ErrBadFrame)
	}
	return nil
}

func (u *UnitSpec) normalize() error {
	if len(u.Input) > MaxInput {
		return fmt.Errorf("%w: input of %d bytes > %d", ErrTooLarge, len(u.Input), MaxInput)
	}
	if u.Deadline <= 0 {
		u.Deadline = DefaultDeadline
	}
	if u.Quorum <= 0 {
		u.Quorum = 1
	}
	if u.MaxAttempts <= 0 {
		u.MaxAttempts = DefaultMaxAttempts
	}
	switch {
	case u.Deadline > MaxDeadline:
		return fmt.Errorf("%w: deadline %v > %v", ErrBadFrame, u.Deadline, MaxDeadline)
	case u.Quorum > MaxQuorum:
		return fmt.Errorf("%w: quorum %d > %d", ErrBadFrame, u.Quorum, MaxQuorum)
	case u.MaxAttempts > MaxAttemptsCap:
		return fmt.Errorf("%w: max attempts %d > %d", ErrBadFrame, u.MaxAttempts, MaxAttemptsCap)
	case u.Estimate < 0 || u.Estimate != u.Estimate || u.Estimate > 1e9:
		return fmt.Errorf("%w: estimate out of range", ErrBadFrame)
	case len(u.Req.OS) > MaxName || len(u.Req.Arch) > MaxName || u.Req.MinCores < 0:
		return fmt.Errorf("%w: requirements out of range", ErrBadFrame)
	}
	return nil
}

// Profile is a provider's host, as it registers: seed 004's CPU speed, OS,
// memory, disk, network type and speed, plus a measured benchmark.
type Profile struct {
	Name     string  `cbor:"1,keyasint,omitempty"`
	CPU      string  `cbor:"2,keyasint,omitempty"` // model name
	MHz      float64 `cbor:"3,keyasint,omitempty"`
	Cores    int     `cbor:"4,keyasint,omitempty"`
	OS       string  `cbor:"5,keyasint,omitempty"`
	Arch     string  `cbor:"6,keyasint,omitempty"`
	Memory   uint64  `cbor:"7,keyasint,omitempty"` // bytes, total
	MemFree  uint64  `cbor:"8,keyasint,omitempty"` // bytes, available
	DiskFree uint64  `cbor:"9,keyasint,omitempty"` // bytes free in the provider's directory
	Network  string  `cbor:"10,keyasint,omitempty"`
	// Score is the benchmark: millions of Mandelbrot inner iterations per
	// second on one core. RefScore is the reference host.
	Score float64 `cbor:"11,keyasint,omitempty"`
	Slots int     `cbor:"12,keyasint,omitempty"` // units run at once
}

// RefScore is the benchmark score of the reference host that Estimate is
// measured on.
const RefScore = 100.0

func (p *Profile) sanitize() {
	p.Name, p.CPU, p.OS, p.Arch, p.Network = clip(p.Name, MaxName), clip(p.CPU, MaxName), clip(p.OS, 32), clip(p.Arch, 32), clip(p.Network, MaxName)
	if p.Slots <= 0 {
		p.Slots = 1
	}
	if p.Slots > MaxSlots {
		p.Slots = MaxSlots
	}
	if !(p.Score > 0) || p.Score > 1e9 {
		p.Score = RefScore
	}
	if p.MHz != p.MHz || p.MHz < 0 {
		p.MHz = 0
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Result is what a client receives for each unit that ends.
type Result struct {
	Job    string `cbor:"1,keyasint"`
	Unit   uint32 `cbor:"2,keyasint"`
	Seq    uint64 `cbor:"3,keyasint"` // order of ending within the job, from 1
	Output []byte `cbor:"4,keyasint,omitempty"`
	Err    string `cbor:"5,keyasint,omitempty"` // set when the unit failed
}
