package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

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

// An object given in pieces is stored as their concatenation, on every
// store, whatever the pieces' sizes (empty ones, one over a multipart
// part); the same pieces again, or the same bytes whole, are no conflict.
func TestCreateParts(t *testing.T) {
	ctx := context.Background()
	whole := make([]byte, partSize+3<<20+7)
	rand.Read(whole)
	parts := [][]byte{whole[:0], whole[:5], whole[5 : 1<<20], whole[1<<20 : 1<<20], whole[1<<20 : partSize+2<<20], whole[partSize+2<<20:]}
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.CreateParts(ctx, "segments/parts.seg", parts); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, "segments/parts.seg")
			if err != nil || !bytes.Equal(got, whole) {
				t.Fatalf("read back %d bytes of %d: %v", len(got), len(whole), err)
			}
			if err := s.CreateParts(ctx, "segments/parts.seg", parts); err != nil {
				t.Fatalf("the same parts again: %v", err)
			}
			if err := s.Create(ctx, "segments/parts.seg", whole); err != nil {
				t.Fatalf("the same bytes whole: %v", err)
			}
			other := [][]byte{whole[:5], bytes.Repeat([]byte{0}, len(whole)-5)}
			if err := s.CreateParts(ctx, "segments/parts.seg", other); !errors.Is(err, ErrConflict) {
				t.Fatalf("other parts of the same length: %v", err)
			}
			// Parts aligned as segment chunks are: a local store writes
			// them with direct I/O, and the tail through the page cache.
			aligned := [][]byte{whole[:1<<20], whole[1<<20 : partSize+2<<20], whole[partSize+2<<20:]}
			if err := s.CreateParts(ctx, "segments/aligned.seg", aligned); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, "segments/aligned.seg"); err != nil || !bytes.Equal(got, whole) {
				t.Fatalf("aligned parts: read back %d bytes of %d: %v", len(got), len(whole), err)
			}
		})
	}
}

// A partsReader hands a Writer the parts in order, straight from them,
// never more than writePiece bytes at a time; its Read gives the same
// bytes.
func TestPartsReader(t *testing.T) {
	whole := make([]byte, 3*writePiece+100)
	rand.Read(whole)
	parts := [][]byte{nil, whole[:10], whole[10 : 2*writePiece+50], {}, whole[2*writePiece+50:]}
	var w pieceWriter
	n, err := (&partsReader{parts: parts}).WriteTo(&w)
	if err != nil || n != int64(len(whole)) || !bytes.Equal(w.buf.Bytes(), whole) {
		t.Fatalf("WriteTo: %d bytes, %v; same bytes: %v", n, err, bytes.Equal(w.buf.Bytes(), whole))
	}
	for _, p := range w.pieces {
		if p == 0 || p > writePiece {
			t.Fatalf("pieces written %v: want each 1 to %d bytes", w.pieces, writePiece)
		}
	}
	var got bytes.Buffer
	r := &partsReader{parts: parts}
	p := make([]byte, 7777)
	for {
		n, err := r.Read(p)
		got.Write(p[:n])
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got.Bytes(), whole) {
		t.Fatalf("Read gave %d bytes, not the %d of the parts", got.Len(), len(whole))
	}
}

// With direct I/O, a partsReader writes each aligned chunk whole, and the
// rest (an unaligned tail, or parts that are not aligned in memory or in
// the file) through the page cache in pieces; the file holds the parts'
// bytes either way.
func TestPartsReaderDirect(t *testing.T) {
	chunk := func(n int) []byte { // 4 KiB-aligned, as Go allocates these sizes
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	a, b, c := chunk(1<<20), chunk(64<<10), chunk(1<<20)
	for _, tc := range []struct {
		name   string
		parts  [][]byte
		pieces []int
	}{
		{"aligned, then a tail", [][]byte{a, b, c[:8192+100]}, []int{1 << 20, 64 << 10, 8192, 100}},
		{"unaligned in the file", [][]byte{b[:100], a}, []int{100, writePiece}},
		{"unaligned in memory", [][]byte{a[1:4097], b}, []int{4096, writePiece, writePiece}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "direct")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !setDirect(f, true) {
				t.Skip("no O_DIRECT on this file system")
			}
			for _, p := range tc.parts {
				if len(p) >= directAlign && !aligned(p) && tc.name != "unaligned in memory" {
					t.Skip("the allocator did not align a chunk")
				}
			}
			w := &pieceFile{f: f}
			r := &partsReader{parts: tc.parts, direct: f}
			want := bytes.Join(tc.parts, nil)
			if n, err := r.WriteTo(w); err != nil || n != int64(len(want)) {
				t.Fatalf("WriteTo: %d, %v", n, err)
			}
			for i, p := range tc.pieces {
				if i >= len(w.pieces) || w.pieces[i] != p {
					t.Fatalf("pieces written %v, want them to start %v", w.pieces, tc.pieces)
				}
			}
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("file holds %d bytes, the parts %d; same: %v (%v)", len(got), len(want), bytes.Equal(got, want), err)
			}
		})
	}
}

type pieceFile struct {
	f      *os.File
	pieces []int
}

func (w *pieceFile) Write(p []byte) (int, error) {
	w.pieces = append(w.pieces, len(p))
	return w.f.Write(p)
}

type pieceWriter struct {
	buf    bytes.Buffer
	pieces []int
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.pieces = append(w.pieces, len(p))
	return w.buf.Write(p)
}

// A large object really goes up in parts on each cloud store, where the
// parts can be seen: S3's ETag counts them, Azure lists a blob's committed
// blocks, and GCS's chunks of a resumable upload are counted on their
// way, by a proxy in front of fake-gcs-server.
func TestLargeObjectIsMultipart(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, partSize+1)
	open := func(t *testing.T, url string) *Store {
		t.Helper()
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Create(ctx, "m.seg", big); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("s3", func(t *testing.T) {
		url := s3test.Start(t)
		if url == "" {
			t.Skip("no versitygw")
		}
		s := open(t, url)
		attrs, err := s.bucket.Attributes(ctx, "m.seg")
		if err != nil {
			t.Fatal(err)
		}
		// A multipart object's ETag is "<md5 of part md5s>-<parts>".
		if !strings.Contains(attrs.ETag, "-2") {
			t.Fatalf("ETag %s: not a 2-part upload", attrs.ETag)
		}
	})
	t.Run("azblob", func(t *testing.T) {
		url := azuretest.Start(t)
		if url == "" {
			t.Skip("no Azurite")
		}
		s := open(t, url)
		var c *container.Client
		if !s.bucket.As(&c) {
			t.Fatal("no Azure container client")
		}
		bl, err := c.NewBlockBlobClient("some/prefix/m.seg").GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bl.CommittedBlocks); n != 2 {
			t.Fatalf("%d committed blocks, want 2", n)
		}
	})
	t.Run("gs", func(t *testing.T) {
		url := gcstest.Start(t)
		if url == "" {
			t.Skip("no fake-gcs-server")
		}
		emulator := os.Getenv("STORAGE_EMULATOR_HOST")
		var chunks atomic.Int32
		proxy := httputil.NewSingleHostReverseProxy(&neturl.URL{Scheme: "http", Host: emulator})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A chunk (sent with PUT or POST) says which bytes it carries.
			if r.URL.Query().Get("upload_id") != "" && r.Header.Get("Content-Range") != "" {
				chunks.Add(1)
			}
			proxy.ServeHTTP(w, r)
		}))
		defer srv.Close()
		// The upload session's URL, where the chunks go, comes back in
		// Location, naming the emulator: point it at the proxy too.
		proxy.ModifyResponse = func(r *http.Response) error {
			if loc := r.Header.Get("Location"); loc != "" {
				r.Header.Set("Location", strings.Replace(loc, emulator, srv.Listener.Addr().String(), 1))
			}
			return nil
		}
		t.Setenv("STORAGE_EMULATOR_HOST", srv.Listener.Addr().String())
		open(t, url)
		if n := chunks.Load(); n != 2 {
			t.Fatalf("%d chunks uploaded, want 2", n)
		}
	})
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

// A local repository on another file system than $TMPDIR: objects are
// written beside their final name, so the rename never crosses devices.
func TestLocalStoreOnAnotherFileSystem(t *testing.T) {
	var tmp, shm syscall.Stat_t
	if syscall.Stat(os.TempDir(), &tmp) != nil || syscall.Stat("/dev/shm", &shm) != nil || tmp.Dev == shm.Dev {
		t.Skip("no /dev/shm on another device than $TMPDIR")
	}
	dir, err := os.MkdirTemp("/dev/shm", "ktape-storage-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Create(ctx, "segments/a/b.seg", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if b, err := st.Get(ctx, "segments/a/b.seg"); err != nil || string(b) != "data" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

// A local store does not list the temporary file its driver writes an
// object to before renaming it into place (a process killed mid-write
// leaves it for good): a reader listing it would take it for an object.
func TestLocalListSkipsTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(ctx, "checkpoints/r/workers/w/0000000001.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "checkpoints/r/workers/w/0000000002.json.18a2b3c4d5e6f708.tmp")
	if err := os.WriteFile(tmp, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, "checkpoints/")
	if err != nil {
		t.Fatal(err)
	}
	if want := "[checkpoints/r/workers/w/0000000001.json]"; fmt.Sprint(keys) != want {
		t.Fatalf("list: %v, want %s", keys, want)
	}
}

// Reading back an object that went up in parts writes nothing to stderr:
// the S3 SDK's own logger (stderr, "SDK <time> WARN Skipped validation of
// multipart checksum.") would put a line outside ktape's log, and outside
// its --json lines, on every segment a restore or verify reads.
func TestMultipartReadsLogNothing(t *testing.T) {
	url := s3test.Start(t)
	if url == "" {
		t.Skip("no versitygw")
	}
	ctx := context.Background()
	// The SDK's logger takes os.Stderr as it is when the store opens.
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = stderr
	s, err := Open(ctx, url)
	os.Stderr = saved
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	big := make([]byte, partSize+4096)
	rand.Read(big)
	if err := s.Create(ctx, "m.seg", big); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "m.seg"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if got, err := s.GetRange(ctx, "m.seg", 0, int64(len(big))); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("get range: %d bytes, %v", len(got), err)
	}
	if got, err := s.ReadRange(ctx, "m.seg", 0, int64(len(big)), make([]byte, 0, len(big)+ReadSlack)); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read range: %d bytes, %v", len(got), err)
	}
	logged, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) > 0 {
		t.Fatalf("reading a multipart object wrote to stderr: %q", logged)
	}
}
