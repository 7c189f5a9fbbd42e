// Command chat is a two-laptop chat: run it with no argument to wait for a
// friend, and hand them the invite it prints; they run it with that invite.
// Lines typed on one side appear on the other. With -superpeer it works
// across NATs: hole-punched when the routers allow it, relayed when not.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/juxta-p2p/juxta"
)

func main() {
	cfg, args := juxta.ParseFlags("chat [-superpeer invite] [friend's invite]", 1)
	ctx := context.Background()
	node := must(juxta.New(ctx, cfg))
	defer node.Close()
	fmt.Println("invite:", node.Invite("chat"))
	var conn io.ReadWriter
	if len(args) == 1 {
		conn = must(node.Dial(ctx, args[0], "chat"))
	} else {
		conn = must(must(node.Listen(ctx, "chat")).Accept())
	}
	go io.Copy(os.Stdout, conn)
	io.Copy(conn, os.Stdin)
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
