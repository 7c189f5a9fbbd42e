// Package leaktest is the one goleak setup of juxta's tests: every package's
// TestMain fails when a goroutine outlives the tests, apart from the few
// process-wide workers dependencies start on first use.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Ignored are the dependencies' process-wide goroutines, tied to no peer.
var Ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
}

// VerifyTestMain runs the tests and fails them if goroutines leaked.
func VerifyTestMain(m *testing.M, extra ...goleak.Option) {
	goleak.VerifyTestMain(m, append(append([]goleak.Option{}, Ignored...), extra...)...)
}
