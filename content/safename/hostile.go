package safename

import "strings"

// Hostile are names a hostile peer may send: path escapes, control and bidi
// characters, device names, broken UTF-8 and very long names. Tests of every
// program that takes names from peers feed it these.
var Hostile = []string{
	"../../../etc/passwd",
	`..\..\Windows\System32\drivers\etc\hosts`,
	"/etc/shadow",
	`C:\autoexec.bat`,
	"..",
	".",
	"",
	"   ",
	"a\x00b.txt",
	"evil\x1b[2J\x1b[31mred.txt",
	"line\nbreak\r.txt",
	"\u202egnp.exe",             // right-to-left override: shows as "exe.png"
	"inv\u2066isible\u2069.mp3", // isolates
	"zero\u200bwidth.txt",
	"CON.txt",
	"lpt1",
	"what?<>|*\".txt",
	"\xff\xfe broken utf8.txt",
	strings.Repeat("가", 5000) + ".mp3", // 15 KB of Hangul
	strings.Repeat("a", 10<<10),
	"..." + strings.Repeat("/..", 3000),
}
