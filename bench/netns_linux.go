package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsEnv marks the child that runs inside the fresh network namespace.
const netnsEnv = "JUXTA_BENCH_NETNS"

// exitNetnsSetup is the child's exit code when it could not make its namespace
// usable; the parent then runs the benchmark in place.
const exitNetnsSetup = 3

// isolate puts the benchmark in a fresh network namespace when it can: as root,
// and unless enabled is false, it re-runs this program in a child cloned with
// CLONE_NEWNET, where the only interface is a loopback that the child brings
// up. It returns a line describing the network the benchmark runs in. When done
// is true, the benchmark already ran in the child and the caller exits with
// code.
func isolate(enabled bool) (network string, code int, done bool) {
	const inPlace = "; running in place, traffic to 127.0.0.1 only"
	if os.Getenv(netnsEnv) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: in the new network namespace: bring lo up: %v\n", err)
			return "", exitNetnsSetup, true
		}
		return "isolated: fresh network namespace, interfaces: " + interfaces(), 0, false
	}
	if !enabled {
		return "not isolated (-netns=false)" + inPlace, 0, false
	}
	if os.Geteuid() != 0 {
		return "not isolated (not root, so no network namespace)" + inPlace, 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Sprintf("not isolated (find own executable: %v)", err) + inPlace, 0, false
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	// The child handles interrupts; the parent passes them on and waits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		msg := fmt.Sprintf("not isolated (cannot create a network namespace: %v)", err)
		fmt.Fprintln(os.Stderr, "bench: "+msg+inPlace)
		return msg + inPlace, 0, false
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-waited:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return "", 0, true
			case errors.As(err, &ee) && ee.ExitCode() == exitNetnsSetup:
				msg := "not isolated (the new network namespace's loopback could not be brought up)"
				fmt.Fprintln(os.Stderr, "bench: "+msg+inPlace)
				return msg + inPlace, 0, false
			case errors.As(err, &ee) && ee.ExitCode() > 0:
				return "", ee.ExitCode(), true
			default:
				fmt.Fprintf(os.Stderr, "bench: child in network namespace: %v\n", err)
				return "", 1, true
			}
		}
	}
}

// loopbackUp sets IFF_UP on lo with SIOCGIFFLAGS/SIOCSIFFLAGS, as `ip link set
// lo up` would.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// interfaces lists the network interfaces in this namespace, with their state.
func interfaces() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	var names []string
	for _, i := range ifs {
		state := "down"
		if i.Flags&net.FlagUp != 0 {
			state = "up"
		}
		names = append(names, i.Name+" ("+state+")")
	}
	return strings.Join(names, ", ")
}
