package farm

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
)

// The scheduler keeps its state in one bbolt file. Every transition of a unit
// writes the unit's record; the committer groups all writes made while the
// previous transaction was syncing into the next one, so one fsync covers many
// transitions (group commit). Nothing is acknowledged — a grant sent, a result
// acknowledged, a job accepted — before the transaction holding it is synced.
var (
	bJobs    = []byte("jobs")    // jobID → jobRec
	bUnits   = []byte("units")   // jobID|unit → unitRec
	bInputs  = []byte("inputs")  // jobID|unit → input
	bOuts    = []byte("outs")    // jobID|unit|attempt → reported output
	bResults = []byte("results") // jobID|seq → Result
	bProvs   = []byte("provs")   // peer ID → provRec
)

var enc, _ = cbor.CoreDetEncOptions().EncMode()

// dec bounds what any decoder allocates for hostile input.
var dec, _ = cbor.DecOptions{MaxArrayElements: MaxUnitsPerFrame * 2, MaxMapPairs: 64, MaxNestedLevels: 16}.DecMode()

type op struct {
	bucket []byte
	key    []byte
	val    []byte // nil deletes
}

type committer struct {
	db   *bolt.DB
	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	ops     []op         // guarded by mu; waiting for the next transaction
	waiters []chan error // guarded by mu
	closed  bool         // guarded by mu
	commits uint64       // guarded by mu; transactions written
	batched uint64       // guarded by mu; ops written
}

func openDB(dir string) (*bolt.DB, error) {
	path := filepath.Join(dir, "scheduler.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("farm: open %s: %w (is another scheduler using this directory?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bJobs, bUnits, bInputs, bOuts, bResults, bProvs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("farm: init %s: %w", path, err)
	}
	return db, nil
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

// add queues ops for the next transaction and returns a channel that receives
// its outcome once it is synced. Callers holding the scheduler's lock call add
// in the order of their changes, so later writes win.
func (c *committer) add(ops []op) <-chan error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ch <- ErrClosed
		return ch
	}
	c.ops = append(c.ops, ops...)
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return ch
}

func (c *committer) run() {
	defer c.wg.Done()
	for {
		select {
		case <-c.wake:
		case <-c.done:
			c.flush() // what was queued before Close still commits
			return
		}
		c.flush()
	}
}

func (c *committer) flush() {
	c.mu.Lock()
	ops, waiters := c.ops, c.waiters
	c.ops, c.waiters = nil, nil
	c.mu.Unlock()
	if len(waiters) == 0 {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, o := range ops {
			b := tx.Bucket(o.bucket)
			var err error
			if o.val == nil {
				err = b.Delete(o.key)
			} else {
				err = b.Put(o.key, o.val)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("farm: commit: %w", err)
	}
	c.mu.Lock()
	c.commits++
	c.batched += uint64(len(ops))
	c.mu.Unlock()
	for _, w := range waiters {
		w <- err
	}
}

func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	c.wg.Wait()
}

// Keys.

func unitKey(job jobKey, idx uint32) []byte {
	k := make([]byte, 12)
	copy(k, job[:])
	binary.BigEndian.PutUint32(k[8:], idx)
	return k
}

func outKey(job jobKey, idx uint32, attempt uint16) []byte {
	return binary.BigEndian.AppendUint16(unitKey(job, idx), attempt)
}

func resultKey(job jobKey, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), job[:]...), seq)
}

// Records.

type jobRec struct {
	Spec      JobSpec `cbor:"1,keyasint"`
	Owner     string  `cbor:"2,keyasint"`
	Units     uint32  `cbor:"3,keyasint"`
	Sealed    bool    `cbor:"4,keyasint,omitempty"` // all units submitted
	Cancelled bool    `cbor:"5,keyasint,omitempty"`
	Created   int64   `cbor:"6,keyasint"`
}

// Instance states.
const (
	iActive   uint8 = 1 // handed to the provider
	iReported uint8 = 2 // a result is in (Hash set)
	iError    uint8 = 3 // the run failed (Err set)
	iLost     uint8 = 4 // deadline missed or provider lost; a late result is ignored
	iOutvoted uint8 = 5 // its result disagreed with the quorum
)

type instRec struct {
	Prov     string `cbor:"1,keyasint"`
	Attempt  uint16 `cbor:"2,keyasint"`
	Deadline int64  `cbor:"3,keyasint"` // unix ms
	State    uint8  `cbor:"4,keyasint"`
	Hash     []byte `cbor:"5,keyasint,omitempty"`
	Err      string `cbor:"6,keyasint,omitempty"`
	Issued   int64  `cbor:"7,keyasint"` // unix ms
}

type unitRec struct {
	State       State        `cbor:"1,keyasint"`
	Seq         uint64       `cbor:"2,keyasint"` // FIFO order, farm-wide
	Priority    int          `cbor:"3,keyasint,omitempty"`
	Req         Requirements `cbor:"4,keyasint,omitempty"`
	Deadline    int64        `cbor:"5,keyasint"` // ns
	Estimate    float64      `cbor:"6,keyasint,omitempty"`
	Quorum      int          `cbor:"7,keyasint"`
	MaxAttempts int          `cbor:"8,keyasint"`
	Need        int          `cbor:"9,keyasint"` // matching results needed: Quorum, or 1 when run alone
	Inst        []instRec    `cbor:"10,keyasint,omitempty"`
	Wasted      int          `cbor:"11,keyasint,omitempty"` // attempts that ended without a usable result
	Err         string       `cbor:"12,keyasint,omitempty"`
	NextAttempt uint16       `cbor:"13,keyasint,omitempty"`
}

type provRec struct {
	Profile    Profile `cbor:"1,keyasint"`
	Valid      uint64  `cbor:"2,keyasint,omitempty"`
	Invalid    uint64  `cbor:"3,keyasint,omitempty"`
	Errors     uint64  `cbor:"4,keyasint,omitempty"`
	Lost       uint64  `cbor:"5,keyasint,omitempty"`
	Streak     int     `cbor:"6,keyasint,omitempty"`
	Distrusted bool    `cbor:"7,keyasint,omitempty"`
	SecPerRef  float64 `cbor:"8,keyasint,omitempty"` // measured seconds per reference second
}

func mustEnc(v any) []byte {
	b, err := enc.Marshal(v)
	if err != nil {
		panic(err) // only our own plain records are encoded
	}
	return b
}
