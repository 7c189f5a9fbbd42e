//go:build !unix

package farm

func diskFree(string) uint64 { return 0 }
