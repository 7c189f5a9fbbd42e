package content_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
)

// Two peers on loopback: one shares a file, the other fetches it through the
// share link.
func Example() {
	ctx := context.Background()
	pa, _ := peer.New(ctx, peer.TestConfig())
	defer pa.Close()
	pb, _ := peer.New(ctx, peer.TestConfig())
	defer pb.Close()
	a, _ := content.New(ctx, content.Config{Peer: pa, NoAnnounce: true})
	defer a.Close()
	b, _ := content.New(ctx, content.Config{Peer: pb, NoAnnounce: true})
	defer b.Close()

	dir, _ := os.MkdirTemp("", "content-example")
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "hello.txt")
	os.WriteFile(src, []byte("hello, juxta"), 0o644)

	info, err := a.Add(ctx, src)
	if err != nil {
		fmt.Println(err)
		return
	}
	link, _ := a.Link(info.ID)
	parsed, err := content.ParseLink(link.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	got, err := b.Fetch(ctx, parsed.ID, filepath.Join(dir, "copy.txt"), content.FromLink(parsed))
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := os.ReadFile(got.Path)
	fmt.Println(parsed.Name, got.Size, string(data))
	// Output: hello.txt 12 hello, juxta
}

// A content ID is the BLAKE3 hash of the bytes, printed as a CID: this one is
// BLAKE3("hello").
func ExampleParseID() {
	id, err := content.ParseID("bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4")
	fmt.Println(err, id.Hex()[:16])
	// Output: <nil> ea8f163db3868292
}
