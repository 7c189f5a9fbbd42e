// Package clitest checks a built program's command-line conventions, shared
// by the examples' tests: -h prints the usage to stdout and exits 0; a usage
// error prints what is wrong and the usage to stderr, nothing to stdout, and
// exits 2.
package clitest
