package farm

import (
	"bufio"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// HostProfile measures this machine the way seed 004's provider does: CPU
// model and speed, cores, OS and architecture, memory, free disk in dir,
// network, plus a benchmark (Score). It uses the standard library and
// golang.org/x/sys (no gopsutil): /proc on Linux, statfs for disk.
func HostProfile(dir string) Profile {
	p := Profile{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	p.Name, _ = os.Hostname()
	p.CPU, p.MHz = cpuInfo()
	p.Memory, p.MemFree = memInfo()
	p.DiskFree = diskFree(dir)
	p.Network = network()
	p.Score = Benchmark(50 * time.Millisecond)
	return p
}

// Benchmark runs Mandelbrot inner iterations on one core for about d and
// returns millions of iterations per second.
func Benchmark(d time.Duration) float64 {
	start := time.Now()
	var iters uint64
	for time.Since(start) < d {
		for py := 0; py < 32; py++ {
			for px := 0; px < 32; px++ {
				cx, cy := -2+float64(px)*3/32, -1.5+float64(py)*3/32
				x, y := 0.0, 0.0
				var i int
				for i = 0; i < 256 && x*x+y*y <= 4; i++ {
					x, y = x*x-y*y+cx, 2*x*y+cy
				}
				iters += uint64(i)
			}
		}
	}
	s := float64(iters) / time.Since(start).Seconds() / 1e6
	return math.Round(s*10) / 10
}

func cpuInfo() (string, float64) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH, 0
	}
	defer f.Close()
	model, mhz := "", 0.0
	sc := bufio.NewScanner(f)
	for sc.Scan() && (model == "" || mhz == 0) {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Model", "Hardware":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "cpu MHz":
			mhz, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return model, mhz
}

func memInfo() (total, avail uint64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total, avail
}

// network names the first interface that is up and not loopback, with its
// kind and link speed when the system says.
func network() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		kind := "wired"
		if _, err := os.Stat("/sys/class/net/" + i.Name + "/wireless"); err == nil {
			kind = "wireless"
		}
		s := i.Name + " " + kind
		if b, err := os.ReadFile("/sys/class/net/" + i.Name + "/speed"); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
				s += " " + strconv.Itoa(v) + " Mb/s"
			}
		}
		return s
	}
	return "loopback only"
}
