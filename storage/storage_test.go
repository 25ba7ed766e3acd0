package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktape/ktape/internal/azuretest"
	"github.com/ktape/ktape/internal/gcstest"
	"github.com/ktape/ktape/internal/s3test"
)

// stores returns the stores every test runs against: a local directory,
// and S3, GCS and Azure Blob served on loopback by versitygw,
// fake-gcs-server and Azurite (scripts/test.sh installs them; CI requires
// them).
func stores(t *testing.T) map[string]*Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Store{}
	local, err := Open(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	out["file"] = local
	for name, start := range map[string]func(testing.TB) string{
		"s3": s3test.Start, "gs": gcstest.Start, "azblob": azuretest.Start,
	} {
		url := start(t)
		if url == "" {
			continue
		}
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { s.Close() })
		out[name] = s
	}
	return out
}

// Create is idempotent for the same content, refuses different content,
// and Get, GetRange, Exists, List and Delete see what was written, under
// the store's prefix only.
func TestCreateGetList(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			data := []byte("segment bytes")
			if err := s.Create(ctx, "segments/t/0/a.seg", data); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(ctx, "segments/t/0/a.seg", data); err != nil {
				t.Fatalf("the same content again (a retried write): %v", err)
			}
			err := s.Create(ctx, "segments/t/0/a.seg", []byte("other bytes!!"))
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("different content over an object: %v, want ErrConflict", err)
			}
			if got, err := s.Get(ctx, "segments/t/0/a.seg"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get: %q, %v (the first content must stay)", got, err)
			}
			if got, err := s.GetRange(ctx, "segments/t/0/a.seg", 8, 5); err != nil || string(got) != "bytes" {
				t.Fatalf("range: %q, %v", got, err)
			}
			if _, err := s.GetRange(ctx, "segments/t/0/a.seg", 8, 50); err == nil {
				t.Fatal("a range past the end read without error")
			}
			if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing object: %v, want ErrNotFound", err)
			}
			for _, k := range []string{"backups/b.json", "segments/t/1/c.seg", "segments/t/0/b.seg"} {
				if err := s.Create(ctx, k, []byte(k)); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := s.List(ctx, "segments/")
			if err != nil {
				t.Fatal(err)
			}
			if want := "[segments/t/0/a.seg segments/t/0/b.seg segments/t/1/c.seg]"; fmt.Sprint(keys) != want {
				t.Fatalf("list: %v, want %s", keys, want)
			}
			if ok, err := s.Exists(ctx, "backups/b.json"); !ok || err != nil {
				t.Fatalf("exists: %v, %v", ok, err)
			}
			if err := s.Delete(ctx, "backups/b.json"); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.Exists(ctx, "backups/b.json"); ok || err != nil {
				t.Fatalf("exists after delete: %v, %v", ok, err)
			}
		})
	}
}

// Objects larger than a part go up as multipart uploads and come back
// whole.
func TestCreateLargeObject(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, 2*partSize+12345)
	rand.Read(big)
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.Create(ctx, "segments/big.seg", big); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, "segments/big.seg")
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read back %d bytes of %d: %v", len(got), len(big), err)
			}
			if err := s.Create(ctx, "segments/big.seg", big[:len(big)-1]); !errors.Is(err, ErrConflict) {
				t.Fatalf("a different large object over it: %v", err)
			}
		})
	}
}

// The S3 upload of a large object really is multipart (versitygw would
// otherwise see one PUT).
func TestLargeObjectIsMultipart(t *testing.T) {
	url := s3test.Start(t)
	if url == "" {
		t.Skip("no versitygw")
	}
	ctx := context.Background()
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := make([]byte, partSize+1)
	if err := s.Create(ctx, "m.seg", big); err != nil {
		t.Fatal(err)
	}
	attrs, err := s.bucket.Attributes(ctx, "m.seg")
	if err != nil {
		t.Fatal(err)
	}
	// A multipart object's ETag is "<md5 of part md5s>-<parts>".
	if !strings.Contains(attrs.ETag, "-2") {
		t.Fatalf("ETag %s: not a 2-part upload", attrs.ETag)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "ftp://host/x"); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Fatalf("ftp: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Open(ctx, filepath.Join(f, "repo")); err == nil {
		t.Fatal("a directory under a file opened")
	}
}
