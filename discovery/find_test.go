package discovery

import (
	"testing"
)

func TestFindThroughEachSource(t *testing.T) {
	ctx := testCtx(t)
	t.Run("lan", func(t *testing.T) {
		a := edge(t, Config{NoPeerAdvertisement: true})
		b := edge(t, Config{NoPeerAdvertisement: true})
		connect(t, b, a)
		if _, err := a.d.Publish(ctx, fileAd("f1", "Blue Monday.mp3")); err != nil {
			t.Fatal(err)
		}
		res := collect(t, b.d, Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: SourceLAN})
		if len(res) != 1 || res[0].ID != "f1" || res[0].Publisher != a.p.ID() || res[0].Source != SourceLAN {
			t.Fatalf("results %+v", res)
		}
	})
	t.Run("super-peer", func(t *testing.T) {
		s := superPeer(t)
		a := edge(t, Config{NoPeerAdvertisement: true}, s)
		b := edge(t, Config{NoPeerAdvertisement: true}, s)
		if _, err := a.d.Publish(ctx, fileAd("f2", "Blue Monday.mp3")); err != nil {
			t.Fatal(err)
		}
		res := collect(t, b.d, Query{Type: "fileshare.file", Attr: "name", Value: "*MONDAY*", Sources: SourceSuperPeers})
		if len(res) != 1 || res[0].ID != "f2" || res[0].From != s.p.ID() {
			t.Fatalf("results %+v", res)
		}
	})
}
