package netlab

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// emulatorQueue bounds the frames in flight in one direction of an emulated
// link; beyond it frames are dropped, as a full router queue would.
const emulatorQueue = 4096

// emulator is a link that adds delay and loss without netem: two TAP
// devices, one in each namespace, and two pumps in this process moving
// Ethernet frames between them, each through a delay queue. Constant delay
// keeps frames in order.
type emulator struct {
	a, b *os.File // the TAP devices; closed on close
	link Link
	done chan struct{} // closed on close
	once sync.Once
}

type frame struct {
	data []byte
	due  time.Time
}

// emulatedLink makes the TAP pair port (in parent) and ifName (in child) and
// starts pumping frames between them.
func (l *Lab) emulatedLink(parent *Namespace, port string, child *Namespace, ifName string, link Link) (*emulator, error) {
	fa, err := openTap(parent, port)
	if err != nil {
		return nil, err
	}
	fb, err := openTap(child, ifName)
	if err != nil {
		os.NewFile(uintptr(fa), port).Close()
		return nil, err
	}
	e := &emulator{
		a:    os.NewFile(uintptr(fa), port),
		b:    os.NewFile(uintptr(fb), ifName),
		link: link,
		done: make(chan struct{}),
	}
	l.links = append(l.links, e)
	e.pump(&l.wg, e.a, e.b)
	e.pump(&l.wg, e.b, e.a)
	return e, nil
}

// pump moves frames from src to dst: a reader drops and timestamps, a
// writer releases each frame when it is due.
func (e *emulator) pump(wg *sync.WaitGroup, src, dst *os.File) {
	q := make(chan frame, emulatorQueue)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(q)
		buf := make([]byte, 1<<16)
		for {
			n, err := src.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				// A device not up yet reads as an error; wait for it.
				select {
				case <-e.done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			if e.link.Loss > 0 && rand.Float64() < e.link.Loss {
				continue
			}
			f := frame{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(e.link.Delay)}
			select {
			case q <- f:
			default: // queue full: tail drop
			}
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for f := range q {
			if d := time.Until(f.due); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-e.done:
					for range q { // let the reader finish
					}
					return
				}
			}
			dst.Write(f.data) // a device going down drops the frame: fine
		}
	}()
}

func (e *emulator) close() {
	e.once.Do(func() {
		close(e.done)
		e.a.Close()
		e.b.Close()
	})
}
