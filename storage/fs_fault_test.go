//go:build linux

package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A local write that runs out of space fails at once (no retries: the
// disk stays full), says so and names the file, and leaves nothing under
// the object's name — not a truncated object that a later write of the
// same object would refuse as a conflict, nor, for a manifest, a backup
// whose manifest is cut in two — and no temporary file. With room, the
// same write then succeeds. (The backup-level test is
// backup.TestBackupOutOfSpace.)
func TestCreateOutOfSpaceLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs (backup.TestBackupOutOfSpace also tries a user namespace): %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, size := range []int{512 << 10, 2 << 20} { // through the page cache, and with direct I/O
		obj := bytes.Repeat([]byte{7}, size)
		key := "segments/t/x/0/big.seg"
		start := time.Now()
		err := s.Create(ctx, key, obj)
		took := time.Since(start)
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("%d bytes on 256 KiB: %v: want ENOSPC naming the path", size, err)
		}
		if took > time.Second {
			t.Fatalf("failing took %v: ENOSPC was retried", took)
		}
		if _, err := os.Stat(filepath.Join(dir, key)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after the failed write, %s: %v: want no such file", key, err)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "segments/t/x/0"))
		for _, e := range entries {
			t.Fatalf("left behind: %s", e.Name())
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=8m"); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, key, obj); err != nil {
			t.Fatalf("with room: %v", err)
		}
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, obj) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=256k"); err != nil {
			t.Fatal(err)
		}
	}
}
