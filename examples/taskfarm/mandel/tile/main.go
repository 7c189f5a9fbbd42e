// Command tile renders one Mandelbrot tile: the encoded tile on stdin, the
// iteration counts on stdout. The task farm demo builds it with
// GOOS=wasip1 GOARCH=wasm and runs it in its sandbox.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/juxta-p2p/juxta/examples/taskfarm/mandel"
)

func main() {
	in, err := io.ReadAll(io.LimitReader(os.Stdin, mandel.TileSize+1))
	if err == nil {
		var t mandel.Tile
		if t, err = mandel.ParseTile(in); err == nil {
			_, err = os.Stdout.Write(mandel.Render(t))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
