package safename_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/juxta-p2p/juxta/content/safename"
)

func ExampleSafeName() {
	fmt.Println(safename.SafeName("../../etc/passwd"))
	fmt.Println(safename.SafeName("CON.txt"))
	fmt.Println(safename.SafeName("\u202egnp.exe"))
	// Output:
	// passwd
	// _CON.txt
	// gnp.exe
}

func ExamplePlace() {
	dir, _ := os.MkdirTemp("", "safename-example")
	defer os.RemoveAll(dir)
	for range 2 {
		part := filepath.Join(dir, ".download.part")
		os.WriteFile(part, []byte("data"), 0o600)
		dst, err := safename.Place(part, dir, "../report.pdf")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(filepath.Base(dst))
	}
	// Output:
	// report.pdf
	// report (1).pdf
}
