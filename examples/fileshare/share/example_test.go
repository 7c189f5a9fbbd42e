package share_test

import (
	"fmt"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

// A name taken from a stranger's advertisement becomes a safe file name.
func ExampleSafeName() {
	fmt.Println(share.SafeName("../../etc/passwd"))
	fmt.Println(share.SafeName("\u202egnp.exe"))
	fmt.Println(share.SafeName("01 - 서른 즈음에.mp3"))
	// Output:
	// passwd
	// gnp.exe
	// 01 - 서른 즈음에.mp3
}

// A shared file is advertised with keywords from its name and folders.
func ExampleFile_Advertisement() {
	f := share.File{Name: "02 - Paranoid Android.mp3", Rel: "Music/Radiohead/OK Computer/02 - Paranoid Android.mp3", Size: 6_400_000, ID: "bafkr4example"}
	ad := f.Advertisement("")
	fmt.Println(ad.Type, ad.Attrs[share.AttrKind])
	fmt.Println(ad.Attrs[share.AttrKeywords])
	// Output:
	// fileshare.file audio
	// music radiohead ok computer 02 paranoid android mp3
}

// Rate caps read as people write them.
func ExampleParseRate() {
	r, _ := share.ParseRate("1.5M")
	fmt.Println(r, share.FormatRate(r))
	// Output: 1572864 1.5 MiB/s
}
