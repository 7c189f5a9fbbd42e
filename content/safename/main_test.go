package safename

import (
	"testing"

	"github.com/juxta-p2p/juxta/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
