// Package mandel renders tiles of the Mandelbrot set: the task farm demo's
// work unit. The same Render runs natively and, built for wasip1 from
// ./tile, inside the farm's wazero sandbox; both give the same bytes.
package mandel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
)

// Tile is one rectangle of the picture: W×H pixels from (X0, Y0) in the
// complex plane, Step apart, iterating at most MaxIter times.
type Tile struct {
	X0, Y0, Step float64
	W, H         uint32
	MaxIter      uint32
}

// TileSize is the length of an encoded Tile.
const TileSize = 3*8 + 3*4

// MaxPixels bounds a tile.
const MaxPixels = 1 << 20

// Marshal encodes t.
func (t Tile) Marshal() []byte {
	b := make([]byte, 0, TileSize)
	for _, f := range []float64{t.X0, t.Y0, t.Step} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	for _, v := range []uint32{t.W, t.H, t.MaxIter} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// ParseTile decodes a tile.
func ParseTile(b []byte) (Tile, error) {
	if len(b) != TileSize {
		return Tile{}, fmt.Errorf("mandel: tile of %d bytes, want %d", len(b), TileSize)
	}
	f := func(i int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])) }
	u := func(i int) uint32 { return binary.LittleEndian.Uint32(b[24+4*i:]) }
	t := Tile{X0: f(0), Y0: f(1), Step: f(2), W: u(0), H: u(1), MaxIter: u(2)}
	if uint64(t.W)*uint64(t.H) > MaxPixels || t.MaxIter > 1<<16 {
		return Tile{}, errors.New("mandel: tile too large")
	}
	return t, nil
}

// Render returns the iteration count of each pixel, row by row, as
// little-endian uint16s.
func Render(t Tile) []byte {
	out := make([]byte, 0, 2*t.W*t.H)
	for py := range t.H {
		cy := t.Y0 + float64(py)*t.Step
		for px := range t.W {
			cx := t.X0 + float64(px)*t.Step
			x, y := 0.0, 0.0
			var i uint32
			for i = 0; i < t.MaxIter; i++ {
				x2, y2 := x*x, y*y
				if x2+y2 > 4 {
					break
				}
				y = 2*x*y + cy
				x = x2 - y2 + cx
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(i))
		}
	}
	return out
}

// RenderUnit is Render as a farm task: tile in, iterations out.
func RenderUnit(_ context.Context, in []byte) ([]byte, error) {
	t, err := ParseTile(in)
	if err != nil {
		return nil, err
	}
	return Render(t), nil
}

// Color maps an iteration count to a colour, with integer arithmetic only
// so that the picture is the same bytes everywhere.
func Color(iter, maxIter uint32) color.RGBA {
	if iter >= maxIter {
		return color.RGBA{0, 0, 0, 255}
	}
	v := iter * 255 / maxIter
	return color.RGBA{uint8((v * 9) % 256), uint8((v * 3) % 256), uint8(255 - v), 255}
}

// Paint writes a rendered tile into img at (x, y).
func Paint(img *image.RGBA, x, y int, t Tile, iters []byte) {
	for py := range int(t.H) {
		for px := range int(t.W) {
			i := 2 * (py*int(t.W) + px)
			if i+1 >= len(iters) {
				return
			}
			img.SetRGBA(x+px, y+py, Color(uint32(binary.LittleEndian.Uint16(iters[i:])), t.MaxIter))
		}
	}
}

// Package is the import path of the tile program built for wasip1.
const Package = "github.com/juxta-p2p/juxta/examples/taskfarm/mandel/tile"

// BuildWasm builds the tile program with GOOS=wasip1 GOARCH=wasm into
// cacheDir (run it inside the juxta module) and returns the module's bytes.
func BuildWasm(ctx context.Context, cacheDir string) ([]byte, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, err
	}
	out := filepath.Join(cacheDir, "mandel-tile.wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, Package)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mandel: build the wasm module (run inside the juxta module): %v\n%s", err, b)
	}
	return os.ReadFile(out)
}
