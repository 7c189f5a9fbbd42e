package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageError is a mistake on the command line: main prints it and the
// command's usage to stderr and exits 2.
type usageError struct {
	msg   string // what is wrong
	usage string // how the command is used
}

func (e *usageError) Error() string { return e.msg }

// parseFlags parses args into fs. -h or --help prints the usage to out and
// returns flag.ErrHelp (exit 0); a bad flag, or more than maxArgs arguments
// after the flags (maxArgs < 0: any number), is a *usageError.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer, maxArgs int) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = io.Copy(out, &buf)
		return flag.ErrHelp
	case err != nil:
		return &usageError{msg: fs.Name() + ": " + err.Error(), usage: flagUsage(fs)}
	case maxArgs >= 0 && fs.NArg() > maxArgs:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(maxArgs)), usage: flagUsage(fs)}
	}
	return nil
}

// flagUsage is what fs.Usage prints.
func flagUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	out := fs.Output()
	fs.SetOutput(&b)
	fs.Usage()
	fs.SetOutput(out)
	return b.String()
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// exitCode maps run's error to the exit status: 0 for none and for -h
// (flag.ErrHelp), 2 for a usage error, 1 for the rest, a failed doctor check
// included.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// report prints run's error to stderr: a usage error with the usage.
func report(stderr io.Writer, err error) {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		msg := ue.msg
		if !strings.HasPrefix(msg, "juxta") {
			msg = "juxta: " + msg
		}
		fmt.Fprintf(stderr, "%s\n\n%s", msg, ue.usage)
	default:
		fmt.Fprintln(stderr, "juxta:", err)
	}
}
