// Command juxta runs juxta's infrastructure and diagnostics:
//
//	juxta superpeer   run a super-peer: relay, DHT server, AutoNAT, discovery index
//	juxta id          show or create an identity and print its invite
//	juxta doctor      diagnose this network: reachability, NAT mapping, relays, paths
//	juxta lab         bring up a simulated home network and run the NAT matrix in it
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mdp/qrterminal/v3"
)

const usage = `usage: juxta COMMAND [flags]

commands:
  superpeer   run a super-peer: relay, DHT server, AutoNAT service, discovery index
  id          show or create an identity and print its invite (and QR code)
  doctor      diagnose this network: reachability, NAT mapping, relays, paths
  lab         bring up a simulated home network (netlab) and run the NAT matrix

Run 'juxta COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	report(os.Stderr, err)
	stop()
	os.Exit(exitCode(err))
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "no command", usage: usage}
	}
	switch args[0] {
	case "superpeer":
		return runSuperPeer(ctx, args[1:], out)
	case "id":
		return runID(ctx, args[1:], out)
	case "doctor":
		return runDoctor(ctx, args[1:], out)
	case "lab":
		return runLab(ctx, args[1:], out)
	}
	if isHelp(args[0]) {
		fmt.Fprint(out, usage)
		return nil
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), usage: usage}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func printQR(out io.Writer, s string) {
	qrterminal.GenerateWithConfig(s, qrterminal.Config{Level: qrterminal.L, Writer: out, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 1})
}
