package farm

import (
	"testing"
	"time"
)

// The decoders a hostile member meets: they must never panic, and whatever
// they accept is within the bounds.
func FuzzDecodeJob(f *testing.F) {
	good, _ := encodeFrame(&frame{T: tSubmit, Job: &JobSpec{Name: "j", Task: Task{Kind: KindNative, Name: "square"}},
		Units: []UnitSpec{{Input: []byte{1, 2}, Quorum: 2, Deadline: time.Minute, Req: Requirements{MinMemory: 1 << 30}}}})
	f.Add(good)
	f.Add([]byte{0xa1, 0x01, 0x07})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, units, err := DecodeJob(b)
		if err != nil {
			return
		}
		if spec.Task.Kind != KindWasm && spec.Task.Kind != KindNative || len(units) > MaxUnitsPerFrame {
			t.Fatalf("accepted %+v with %d units", spec, len(units))
		}
		for _, u := range units {
			if len(u.Input) > MaxInput || u.Quorum < 1 || u.Quorum > MaxQuorum || u.Deadline <= 0 || u.MaxAttempts < 1 {
				t.Fatalf("accepted unit %+v", u)
			}
		}
	})
}

func FuzzDecodeReports(f *testing.F) {
	good, _ := encodeFrame(&frame{T: tReports, Seq: 3, Reports: []Report{{Inst: InstanceID{Unit: 4, Attempt: 1}, Output: []byte("x"), Elapsed: time.Second}}})
	f.Add(good)
	f.Add([]byte{0xa1, 0x01, 0x04})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeReports(b)
		if err != nil {
			return
		}
		if len(rs) > 4*MaxSlots {
			t.Fatalf("%d reports accepted", len(rs))
		}
		for _, r := range rs {
			if len(r.Output) > MaxOutput || len(r.Err) > MaxErrorText {
				t.Fatal("oversized report accepted")
			}
		}
	})
}

func FuzzParseInvite(f *testing.F) {
	f.Add(encodeInvite(inviteBody{Group: []byte{1}, Password: "pw", Scheduler: "juxta1x"}))
	f.Add("juxtafarm1")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseInvite(s)
		if err == nil && (len(b.Group) == 0 || b.Scheduler == "") {
			t.Fatal("empty invite accepted")
		}
	})
}
