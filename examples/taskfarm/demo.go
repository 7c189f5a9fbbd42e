package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/examples/taskfarm/farm"
	"github.com/juxta-p2p/juxta/examples/taskfarm/mandel"
	"github.com/juxta-p2p/juxta/peer"
)

type renderOpts struct {
	w, h, tile int
	maxIter    int
	quorum     int
	out        string
	plain      bool
	cache      string
}

func (o *renderOpts) add(fs *flag.FlagSet) {
	fs.StringVar(&o.out, "out", "mandelbrot.png", "PNG to write")
	fs.IntVar(&o.tile, "tile", 32, "tile side in pixels (one work unit per tile)")
	fs.IntVar(&o.maxIter, "iter", 500, "maximum iterations")
	fs.IntVar(&o.quorum, "quorum", 1, "matching results needed per tile")
	fs.BoolVar(&o.plain, "plain", false, "print progress lines instead of the live view")
	def, _ := os.UserCacheDir()
	fs.StringVar(&o.cache, "cache", filepath.Join(def, "juxta-taskfarm"), "where the wasm module is built")
	fs.Func("size", "picture size, WxH (default 640x400)", func(s string) error {
		_, err := fmt.Sscanf(strings.ToLower(s), "%dx%d", &o.w, &o.h)
		return err
	})
	o.w, o.h = 640, 400
}

func runSubmit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ExitOnError)
	var nf netFlags
	nf.add(fs, "client")
	invite := fs.String("invite", "", "the farm invite (required)")
	sleeps := fs.Int("sleep-units", 0, "instead of the picture, submit this many units of the native sleep task (providers started with -native)")
	ms := fs.Int("ms", 100, "milliseconds per sleep unit")
	var o renderOpts
	o.add(fs)
	parse(fs, args)
	if nf.dir == "" || *invite == "" {
		return fmt.Errorf("-dir and -invite are required")
	}
	c, err := farm.JoinClient(ctx, farm.ClientConfig{Node: nf.config(), Invite: *invite})
	if err != nil {
		return err
	}
	defer c.Close()
	if *sleeps > 0 {
		return sleepJob(ctx, c, *sleeps, *ms)
	}
	return render(ctx, c, o)
}

// sleepJob runs n units of the native sleep task and prints who ran them.
func sleepJob(ctx context.Context, c *farm.Client, n, ms int) error {
	units := make([]farm.UnitSpec, n)
	for i := range units {
		in := binary.BigEndian.AppendUint32(nil, uint32(ms))
		units[i] = farm.UnitSpec{Input: binary.BigEndian.AppendUint32(in, uint32(i)), Deadline: time.Minute}
	}
	job, err := c.Submit(ctx, farm.JobSpec{Name: "sleep", Task: farm.Task{Kind: farm.KindNative, Name: "sleep"}}, units)
	if err != nil {
		return err
	}
	got := map[uint32]bool{}
	for r, err := range c.Results(ctx, job, 0) {
		if err != nil {
			return err
		}
		if r.Err != "" || len(r.Output) != 8 || binary.BigEndian.Uint32(r.Output[4:]) != r.Unit {
			return fmt.Errorf("unit %d: wrong result %x %s", r.Unit, r.Output, r.Err)
		}
		got[r.Unit] = true
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	for _, p := range st.Providers {
		fmt.Printf("provider %s: %d valid\n", p.Profile.Name, p.Valid)
	}
	fmt.Printf("done: %d units\n", len(got))
	return nil
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	providers := fs.Int("providers", 3, "local providers")
	slots := fs.Int("slots", 1, "slots per provider")
	var o renderOpts
	o.add(fs)
	parse(fs, args)
	dir, err := os.MkdirTemp("", "taskfarm-demo-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	node := func(name string) farm.NodeConfig {
		return farm.NodeConfig{Dir: filepath.Join(dir, name), Name: name, Peer: peer.TestConfig()}
	}
	fmt.Println("starting a scheduler and", *providers, "providers on 127.0.0.1 (mDNS off)")
	srv, err := farm.StartServer(ctx, farm.ServerConfig{Node: node("scheduler"), Password: "demo farm"})
	if err != nil {
		return err
	}
	defer srv.Close()
	for i := range *providers {
		pr, err := farm.JoinProvider(ctx, farm.ProviderConfig{Node: node(fmt.Sprintf("provider-%d", i+1)), Invite: srv.Invite(),
			Slots: *slots, CacheDir: filepath.Join(o.cache, "compiled")})
		if err != nil {
			return err
		}
		defer pr.Close()
	}
	c, err := farm.JoinClient(ctx, farm.ClientConfig{Node: node("client"), Invite: srv.Invite()})
	if err != nil {
		return err
	}
	defer c.Close()
	return render(ctx, c, o)
}

// render builds the tile module, submits one unit per tile, paints results
// as they stream in, shows progress, and writes the PNG.
func render(ctx context.Context, c *farm.Client, o renderOpts) error {
	if o.w <= 0 || o.h <= 0 || o.tile <= 0 || o.maxIter <= 0 || o.maxIter > 1<<16 {
		return errors.New("bad size, tile or iterations")
	}
	fmt.Println("building the tile module with GOOS=wasip1 GOARCH=wasm into", o.cache)
	module, err := mandel.BuildWasm(ctx, o.cache)
	if err != nil {
		return err
	}
	step := 3.2 / float64(o.w)
	x0, y0 := -2.2, -step*float64(o.h)/2
	type place struct {
		x, y int
		t    mandel.Tile
	}
	var places []place
	var units []farm.UnitSpec
	for ty := 0; ty < o.h; ty += o.tile {
		for tx := 0; tx < o.w; tx += o.tile {
			t := mandel.Tile{X0: x0 + float64(tx)*step, Y0: y0 + float64(ty)*step, Step: step,
				W: uint32(min(o.tile, o.w-tx)), H: uint32(min(o.tile, o.h-ty)), MaxIter: uint32(o.maxIter)}
			places = append(places, place{tx, ty, t})
			units = append(units, farm.UnitSpec{Input: t.Marshal(), Quorum: o.quorum, Deadline: time.Minute})
		}
	}
	job, err := c.SubmitWasm(ctx, "mandelbrot", module, farm.Task{Timeout: 30 * time.Second, MemoryPages: 512}, units, true)
	if err != nil {
		return err
	}
	fmt.Printf("job %s: %d tiles of %dx%d, module %d KiB\n", job, len(units), o.tile, o.tile, len(module)>>10)
	img := image.NewRGBA(image.Rect(0, 0, o.w, o.h))
	start := time.Now()
	last := time.Time{}
	got, failed := 0, 0
	for r, err := range c.Results(ctx, job, 0) {
		if err != nil {
			return err
		}
		got++
		if r.Err != "" || int(r.Unit) >= len(places) {
			failed++
			fmt.Printf("tile %d failed: %s\n", r.Unit, r.Err)
			continue
		}
		p := places[r.Unit]
		mandel.Paint(img, p.x, p.y, p.t, r.Output)
		if time.Since(last) > 300*time.Millisecond || got == len(units) {
			last = time.Now()
			st, _ := c.Stats(ctx)
			show(o.plain, img, st, got, len(units), time.Since(start))
		}
	}
	if got < len(units) {
		return fmt.Errorf("%d of %d tiles came back", got, len(units))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("done: %d tiles (%d failed) in %v; wrote %s\n", got, failed, time.Since(start).Round(time.Millisecond), o.out)
	if failed > 0 {
		return fmt.Errorf("%d tiles failed", failed)
	}
	return nil
}

// show prints progress: units by state, providers with host and rates, and
// (in the live view) a low-resolution preview of the picture.
func show(plain bool, img *image.RGBA, st farm.Stats, got, total int, el time.Duration) {
	var b strings.Builder
	if !plain {
		b.WriteString("\x1b[H\x1b[2J")
	}
	fmt.Fprintf(&b, "progress: %d/%d tiles in %v; %s\n", got, total, el.Round(100*time.Millisecond), unitCounts(st.Units))
	sort.Slice(st.Providers, func(i, j int) bool { return st.Providers[i].Profile.Name < st.Providers[j].Profile.Name })
	for _, p := range st.Providers {
		fmt.Fprintf(&b, "provider %-12s %s/%s %d cores %d MiB score %.0f: %d valid, %d active, rate %.2f×ref, trusted %v\n",
			p.Profile.Name, p.Profile.OS, p.Profile.Arch, p.Profile.Cores, p.Profile.Memory>>20, p.Profile.Score,
			p.Valid, p.Active, p.Rate, p.Trusted)
	}
	if !plain {
		b.WriteString(preview(img, 72, 24))
	}
	fmt.Print(b.String())
}

// preview draws img in cols×rows characters by brightness.
func preview(img *image.RGBA, cols, rows int) string {
	const ramp = " .:-=+*#%@"
	r := img.Bounds()
	var b strings.Builder
	for y := range rows {
		for x := range cols {
			px, py := r.Dx()*x/cols, r.Dy()*y/rows
			c := img.RGBAAt(px, py)
			if c.A == 0 {
				b.WriteByte(' ')
				continue
			}
			l := (int(c.R)*3 + int(c.G)*6 + int(c.B)) / 10
			b.WriteByte(ramp[l*(len(ramp)-1)/255])
		}
		b.WriteByte('\n')
	}
	return b.String()
}
