package netlab_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// homes is the lab of the examples: a super-peer on the internet, a laptop
// behind a home router 30 ms away, and a phone behind a flat's router behind
// a carrier-grade NAT (double NAT).
var homes = netlab.Spec{
	Routers: []netlab.RouterSpec{
		{Name: "home", NAT: netlab.NATPortRestricted, WAN: netlab.Link{Delay: 30 * time.Millisecond}},
		{Name: "isp", NAT: netlab.NATSymmetric},
		{Name: "flat", NAT: netlab.NATFullCone, Upstream: "isp", WAN: netlab.Link{Rate: 20_000_000, Loss: 0.01}},
	},
	Hosts: []netlab.HostSpec{
		{Name: "super"},
		{Name: "laptop", Router: "home"},
		{Name: "phone", Router: "flat"},
	},
}

// A Spec is plain data; printing it draws the network.
func ExampleSpec_String() {
	fmt.Print(homes)
	// Output:
	// internet
	// ├── home: port-restricted cone NAT, WAN 30ms delay
	// │   └── laptop
	// ├── isp: symmetric NAT
	// │   └── flat: full cone NAT, WAN 1% loss, 20 Mbit/s
	// │       └── phone
	// └── super: public host
}

// Build the lab, run a program on the laptop and tear everything down. This
// needs root, so it is compiled but not run by go test; the package's tests
// run the same steps when they have root.
func Example() {
	ctx := context.Background()
	lab, err := netlab.New(ctx, homes)
	if err != nil {
		log.Fatal(err)
	}
	defer lab.Close()

	fmt.Println("the laptop is", lab.Host("laptop").Addr(), "and looks like", lab.Host("laptop").PublicAddr())
	// A program run through Command sees only the laptop's interfaces (lo
	// and eth0) and reaches the internet through the home router's NAT.
	out, err := lab.Host("laptop").Command(ctx, "cat", "/proc/net/dev").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", out)
}
