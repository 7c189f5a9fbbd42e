package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// trampolineArg0 marks a re-execution of this binary whose only job is to
// enter a namespace and exec the real program: argv is
// [trampolineArg0, namespace path, program path, program argv...].
const trampolineArg0 = "juxta-netlab-exec"

func init() {
	if len(os.Args) >= 4 && os.Args[0] == trampolineArg0 {
		trampoline(os.Args[1], os.Args[2], os.Args[3:])
	}
}

// trampoline enters the namespace at nsPath and replaces the process with
// prog. It runs in init, before main, on the main thread; execve from a
// thread keeps that thread's namespaces.
func trampoline(nsPath, prog string, argv []string) {
	runtime.LockOSThread()
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "netlab: run %s in %s: %v\n", prog, nsPath, err)
		os.Exit(127)
	}
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		fail(err)
	}
	unix.Close(fd)
	fail(unix.Exec(prog, argv, os.Environ()))
}

// Command returns a command that runs the program name inside the namespace,
// however it is started (Run, Output, Start or this package's Start), like
// exec.CommandContext: ctx kills it. A process is the robust way to put a
// libp2p peer in the lab, since every socket it ever makes is inside.
//
// It works by re-executing the current binary, which steps into the
// namespace before main runs (this package's init) and then executes the
// program: the binary must import netlab, as any that calls Command does.
// Leave cmd.Path and cmd.Args[0:4] as they are; append arguments and set
// Env, Dir, Stdin, Stdout and Stderr freely.
func (n *Namespace) Command(ctx context.Context, name string, arg ...string) *exec.Cmd {
	self, err := os.Executable()
	prog := name
	if err == nil && filepath.Base(name) == name {
		prog, err = exec.LookPath(name)
	}
	if err == nil {
		prog, err = filepath.Abs(prog)
	}
	cmd := exec.CommandContext(ctx, self, append([]string{n.path, prog, name}, arg...)...)
	cmd.Args[0] = trampolineArg0
	if err != nil {
		cmd.Err = fmt.Errorf("netlab: command %s: %w", name, err)
	}
	return cmd
}

// Start starts cmd inside the namespace (any command, not only one from
// Command: it is forked from a thread inside the namespace) and kills it when
// ctx is done or the lab closes. The caller waits for it with cmd.Wait as
// usual.
func (n *Namespace) Start(ctx context.Context, cmd *exec.Cmd) error {
	// The child inherits the namespaces of the thread that forks it.
	if err := n.Do(cmd.Start); err != nil {
		return err
	}
	p := cmd.Process
	n.lab.mu.Lock()
	if n.lab.closed {
		n.lab.mu.Unlock()
		p.Kill()
		return fmt.Errorf("netlab: %s: lab closed while starting: %w", n.name, net.ErrClosed)
	}
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	context.AfterFunc(ctx, func() { p.Kill() })
	return nil
}

// Run starts cmd inside the namespace as Start does and waits for it.
func (n *Namespace) Run(ctx context.Context, cmd *exec.Cmd) error {
	if err := n.Start(ctx, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
