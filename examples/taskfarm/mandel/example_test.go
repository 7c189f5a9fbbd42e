package mandel_test

import (
	"fmt"

	"github.com/juxta-p2p/juxta/examples/taskfarm/mandel"
)

// A tile travels as bytes and renders to one little-endian uint16 iteration
// count per pixel: the origin is in the set (every iteration), the point 2
// escapes after two.
func ExampleRender() {
	t := mandel.Tile{X0: 0, Y0: 0, Step: 2, W: 2, H: 1, MaxIter: 100}
	back, _ := mandel.ParseTile(t.Marshal())
	out := mandel.Render(back)
	fmt.Println(int(out[0])|int(out[1])<<8, int(out[2])|int(out[3])<<8)
	// Output: 100 2
}
