//go:build !linux

package storage

import "os"

// setDirect: direct I/O is used on Linux only.
func setDirect(f *os.File, on bool) bool { return false }
