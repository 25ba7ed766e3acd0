package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ReadRange returns exactly the bytes of the range on every store, from a
// reused buffer, whatever the range's alignment; a range past the end is
// a short-read error and a missing object ErrNotFound, both at once (they
// are not retried).
func TestReadRange(t *testing.T) {
	ctx := context.Background()
	obj := make([]byte, 3<<20+777)
	rand.Read(obj)
	stored := map[string]*Store{}
	for name, s := range stores(t) {
		stored[name] = s
	}
	// A local store on /dev/shm (tmpfs) as well: its file system may
	// refuse direct reads, which must fall back to the page cache.
	if dir, err := os.MkdirTemp("/dev/shm", "ktape-read-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
		if s, err := Open(ctx, filepath.Join(dir, "repo")); err == nil {
			t.Cleanup(func() { s.Close() })
			stored["shm"] = s
		}
	}
	ranges := [][2]int64{
		{0, int64(len(obj))}, {0, 1}, {4096, 8192}, {1, 4095}, {4095, 2 << 20}, {12345, 1 << 20},
		{int64(len(obj)) - 5000, 5000}, {int64(len(obj)) - 1, 1}, {int64(len(obj)), 0},
	}
	for name, s := range stored {
		t.Run(name, func(t *testing.T) {
			if err := s.Create(ctx, "segments/r.seg", obj); err != nil {
				t.Fatal(err)
			}
			buf := alignedBuf(len(obj) + ReadSlack)
			direct := directReads.Load()
			for _, r := range ranges {
				got, err := s.ReadRange(ctx, "segments/r.seg", r[0], r[1], buf)
				if err != nil {
					t.Fatalf("[%d,+%d): %v", r[0], r[1], err)
				}
				if !bytes.Equal(got, obj[r[0]:r[0]+r[1]]) {
					t.Fatalf("[%d,+%d): %d bytes, not the object's", r[0], r[1], len(got))
				}
			}
			if name == "file" && directOK(t) && directReads.Load()-direct < 5 {
				t.Fatalf("%d direct reads of a local store that takes them, want 5 or more", directReads.Load()-direct)
			}
			// An unaligned buffer reads through the page cache.
			got, err := s.ReadRange(ctx, "segments/r.seg", 100, 1<<20, buf[1:])
			if err != nil || !bytes.Equal(got, obj[100:100+1<<20]) {
				t.Fatalf("unaligned buffer: %d bytes, %v", len(got), err)
			}
			start := time.Now()
			if _, err := s.ReadRange(ctx, "segments/r.seg", int64(len(obj))-10, 20, buf); !errors.Is(err, errShortRead) {
				t.Fatalf("range past the end: %v, want a short read", err)
			}
			if _, err := s.ReadRange(ctx, "segments/none.seg", 0, 10, buf); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing object: %v, want ErrNotFound", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("errors took %s: were they retried?", d)
			}
			if _, err := s.ReadRange(ctx, "segments/r.seg", 0, 100, make([]byte, 100)); err == nil {
				t.Fatal("a buffer without ReadSlack's room was taken")
			}
		})
	}
}

// alignedBuf returns n bytes starting at a directAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	for i := range directAlign {
		if aligned(b[i:]) {
			return b[i : i+n]
		}
	}
	panic(fmt.Sprint("no aligned start in ", directAlign, " bytes"))
}

// directOK reports whether t's temporary directory takes O_DIRECT.
func directOK(t *testing.T) bool {
	f, err := os.CreateTemp(t.TempDir(), "direct")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return setDirect(f, true)
}
