// Package storage is where a repository's objects live: a local directory
// or a bucket in S3 (or an S3-compatible store), GCS or Azure Blob, all
// through gocloud.dev/blob. It adds what a backup repository needs on top:
// a repository prefix, writes that never replace an object with different
// content, and retries of transient errors. A local store fsyncs what it
// writes and, on Linux, writes objects of a MiB and more (segments) with
// direct I/O where the file system takes it, past the page cache.
//
// URLs:
//
//	/var/backups/kafka  or  file:///var/backups/kafka     a local directory
//	s3://bucket/prefix?region=eu-west-1                    AWS credential chain
//	s3://bucket/prefix?endpoint=http://host:port&use_path_style=true
//	gs://bucket/prefix                                     Google default credentials
//	azblob://container/prefix                              AZURE_STORAGE_* variables
//
// Emulators are reached as gocloud.dev's drivers reach them. For GCS
// (fake-gcs-server), STORAGE_EMULATOR_HOST=host:port: gs:// URLs then go
// there over plain HTTP, unauthenticated. For Azure (Azurite), URL
// parameters name the endpoint, and AZURE_STORAGE_ACCOUNT and
// AZURE_STORAGE_KEY its development account:
//
//	azblob://container/prefix?protocol=http&domain=127.0.0.1:10000
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob" // gs://
	_ "gocloud.dev/blob/s3blob"  // s3://
	"gocloud.dev/gcerrors"
)

// Store is a repository's objects under one prefix. It is safe for
// concurrent use.
type Store struct {
	url    string
	bucket *blob.Bucket
	dir    string // a local store's directory: its writes are fsynced
	// Retry bounds the attempts of an operation that fails with a
	// transient error.
	Retry Retry
}

// Retry is the retry policy for transient errors.
type Retry struct {
	Attempts int           // total attempts, default 5
	Base     time.Duration // first backoff, doubled each attempt, default 200 ms
}

// ErrConflict: an object exists with other content than a write would
// give it. Objects of a repository are immutable.
var ErrConflict = errors.New("storage: object exists with different content")

// ErrNotFound: no such object.
var ErrNotFound = errors.New("storage: object not found")

// Open opens the store at rawURL. A plain path is a local directory,
// created if missing.
func Open(ctx context.Context, rawURL string) (*Store, error) { return open(ctx, rawURL, true) }

// OpenExisting is Open for reading: a local directory must exist.
func OpenExisting(ctx context.Context, rawURL string) (*Store, error) {
	return open(ctx, rawURL, false)
}

func open(ctx context.Context, rawURL string, create bool) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 /* a Windows drive */ {
		return openDir(rawURL, create)
	}
	switch u.Scheme {
	case "file":
		return openDir(u.Path, create)
	case "s3", "gs", "azblob":
	default:
		return nil, fmt.Errorf("storage: %s: unknown scheme %q (file, s3, gs or azblob)", rawURL, u.Scheme)
	}
	prefix := strings.Trim(u.Path, "/")
	u.Path = ""
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", rawURL, err)
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix+"/")
	}
	return &Store{url: rawURL, bucket: b}, nil
}

func openDir(path string, create bool) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", path, err)
	}
	if create {
		err = os.MkdirAll(abs, 0o755)
	} else if fi, serr := os.Stat(abs); serr != nil {
		err = serr
	} else if !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", abs)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	// No .attrs side files: the repository's objects carry no metadata.
	// Temporary files go beside their object, not in $TMPDIR: a rename
	// across file systems fails, and a repository is often on its own.
	b, err := fileblob.OpenBucket(abs, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", abs, err)
	}
	return &Store{url: abs, bucket: b, dir: abs}, nil
}

// URL is the store's location as given (a local path made absolute).
func (s *Store) URL() string { return s.url }

// Close releases the store.
func (s *Store) Close() error { return s.bucket.Close() }

// errShortRead: an object shorter than the range asked for. Not transient.
var errShortRead = errors.New("short read")

// transient reports errors worth another attempt. A local file system
// that is full, read-only or denies the write will not change its mind
// within the seconds of a few retries: those fail at once, saying why.
func transient(err error) bool {
	if errors.Is(err, errShortRead) || errors.Is(err, ErrNotFound) {
		return false
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, errno) {
			return false
		}
	}
	switch gcerrors.Code(err) {
	case gcerrors.Internal, gcerrors.Unknown, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	return false
}

// do runs op with retries of transient errors, paced exponentially.
func (s *Store) do(ctx context.Context, what string, op func() error) error {
	attempts, delay := s.Retry.Attempts, s.Retry.Base
	if attempts <= 0 {
		attempts = 5
	}
	if delay <= 0 {
		delay = 200 * time.Millisecond
	}
	var err error
	for i := 0; i < attempts; i++ {
		if err = op(); err == nil || !transient(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(delay << i):
		case <-ctx.Done():
		}
	}
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	return nil
}

// Create writes a new object, or does nothing if it already exists with
// the same content (a write retried after a crash). An existing object with
// other content is ErrConflict: nothing is ever overwritten. Large objects
// go up in parts, MaxConcurrency at a time.
func (s *Store) Create(ctx context.Context, key string, data []byte) error {
	return s.CreateParts(ctx, key, [][]byte{data})
}

// CreateParts is Create for an object held in pieces (a segment built in
// chunks): the object is the pieces in order, written without joining
// them first.
func (s *Store) CreateParts(ctx context.Context, key string, parts [][]byte) error {
	err := s.do(ctx, "create "+key, func() error {
		// Upload hands the driver the whole object as a reader. Writing
		// it through a blob.Writer instead crashes on Azure: gocloud
		// v0.47.0's azureblob writer closes a pipe it has set to nil when
		// the upload failed, so a conflict (or any failed upload) there
		// is a nil-pointer panic rather than an error.
		r := &partsReader{parts: parts}
		opts := &blob.WriterOptions{
			IfNotExist:     true,
			ContentType:    "application/octet-stream",
			BufferSize:     partSize,
			MaxConcurrency: maxConcurrency,
		}
		if s.dir != "" && partsLen(parts) >= directMin {
			opts.BeforeWrite = func(as func(any) bool) error {
				var f *os.File
				if as(&f) && setDirect(f, true) {
					r.direct = f
				}
				return nil
			}
		}
		if s.dir != "" {
			return s.createLocal(ctx, key, r, opts)
		}
		return s.bucket.Upload(ctx, key, r, opts)
	})
	if err == nil {
		return s.sync(key)
	}
	if !exists(err) {
		return err
	}
	old, gerr := s.Get(ctx, key)
	if gerr != nil {
		return fmt.Errorf("storage: create %s: exists, and reading it back failed: %w", key, gerr)
	}
	if n := partsLen(parts); !equalParts(old, parts) {
		return fmt.Errorf("storage: create %s: %w (%d bytes stored, %d to write)", key, ErrConflict, len(old), n)
	}
	return nil
}

// createLocal writes a local object. blob.Upload closes its writer even
// when the write failed, and fileblob's Close then renames the temporary
// file, whatever it holds, to the object's name: a write cut short (out
// of space, an I/O error) would leave a truncated object in place, which
// every later write of that object then refuses as a conflict and which,
// for a manifest, would make a backup exist with a manifest cut in two.
// Here a failed write cancels the writer's context before closing it, so
// that Close discards the temporary file instead.
func (s *Store) createLocal(ctx context.Context, key string, r io.Reader, opts *blob.WriterOptions) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, opts)
	if err != nil {
		return err
	}
	if _, err := w.ReadFrom(r); err != nil {
		cancel()
		w.Close() // discards the temporary file; err says why
		return err
	}
	return w.Close()
}

// writePiece is the most a partsReader hands a Writer at once through
// the page cache. A local file is written in pieces this size: one
// write(2) of a whole segment (a bytes.Reader's WriteTo does that) cost
// twice the system time on this project's VMs, where writes of a MiB and
// more are the dearest (1 GiB backup: 320 -> 627 MB/s, 5.3 -> 2.3
// CPU-s/GiB, bench/backup).
const writePiece = 32 << 10

// Direct I/O. A local object of directMin bytes or more (a segment) is
// written with O_DIRECT where the file system takes it: the device reads
// the bytes from the caller's memory, with no copy into the page cache,
// no page cache to allocate, and none of the backed-up data crowding out
// what the machine caches for others. Writes, memory and file positions
// must be multiples of directAlign: the caller's chunks are (segment
// buffers are 4 KiB-aligned chunks of 4 KiB and more), but for an
// object's last bytes, which go through the page cache.
const (
	directMin   = 1 << 20
	directAlign = 4096
)

// partsReader reads the concatenation of parts. Its WriteTo, which
// io.Copy and a local file's ReadFrom use, writes straight from the parts
// in pieces of at most writePiece bytes (a part's aligned run at once,
// with direct I/O): no copy through a buffer, and no writes of a whole
// segment through the page cache.
type partsReader struct {
	parts  [][]byte
	off    int      // in parts[0]
	direct *os.File // the file being written, while in direct I/O
	pos    int64    // bytes written by WriteTo
}

func (r *partsReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(r.parts) > 0 {
		m := copy(p[n:], r.parts[0][r.off:])
		n += m
		r.advance(m)
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *partsReader) WriteTo(w io.Writer) (int64, error) {
	for len(r.parts) > 0 {
		piece := r.parts[0][r.off:]
		if len(piece) == 0 {
			r.advance(0)
			continue
		}
		if r.direct != nil {
			if n := len(piece) &^ (directAlign - 1); n > 0 && r.pos%directAlign == 0 && aligned(piece) {
				piece = piece[:n]
			} else {
				r.buffered()
			}
		}
		if r.direct == nil {
			piece = piece[:min(len(piece), writePiece)]
		}
		n, err := w.Write(piece)
		r.pos += int64(n)
		r.advance(n)
		if err != nil && r.direct != nil && errors.Is(err, syscall.EINVAL) {
			r.buffered() // the file system takes no direct writes after all
			continue
		}
		if err != nil {
			return r.pos, err
		}
		if n < len(piece) {
			return r.pos, io.ErrShortWrite
		}
	}
	return r.pos, nil
}

// buffered ends direct I/O: the rest goes through the page cache.
func (r *partsReader) buffered() {
	if r.direct != nil {
		setDirect(r.direct, false)
		r.direct = nil
	}
}

func aligned(p []byte) bool { return uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign == 0 }

// advance consumes n bytes of the first part, and drops the parts used up.
func (r *partsReader) advance(n int) {
	r.off += n
	for len(r.parts) > 0 && r.off >= len(r.parts[0]) {
		r.parts, r.off = r.parts[1:], 0
	}
}

func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// equalParts reports whether b is the concatenation of parts.
func equalParts(b []byte, parts [][]byte) bool {
	if len(b) != partsLen(parts) {
		return false
	}
	for _, p := range parts {
		if !bytes.Equal(b[:len(p)], p) {
			return false
		}
		b = b[len(p):]
	}
	return true
}

// sync makes a local store's new object durable: fileblob writes a
// temporary file and renames it, with no fsync, so after a power loss a
// manifest could name a segment that never reached the disk. The file,
// then each directory from its own up to the store's, are fsynced.
func (s *Store) sync(key string) error {
	if s.dir == "" {
		return nil
	}
	path := filepath.Join(s.dir, filepath.FromSlash(key))
	for p := path; ; p = filepath.Dir(p) {
		f, err := os.Open(p)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("storage: create %s: fsync %s: %w", key, p, err)
		}
		if p == s.dir || len(p) <= len(s.dir) {
			return nil
		}
	}
}

// exists recognises the precondition failure of a conditional write, which
// some drivers report without a specific code.
func exists(err error) bool {
	c := gcerrors.Code(err)
	return c == gcerrors.FailedPrecondition || c == gcerrors.AlreadyExists
}

// Multipart upload settings: 16 MiB parts, 4 in flight (64 MiB of buffers
// per upload at most).
const (
	partSize       = 16 << 20
	maxConcurrency = 4
)

// readOptions keep the S3 SDK from writing a warning ("Skipped
// validation of multipart checksum.") to the process's stderr on every
// read of an object that went up in parts (a large segment): S3 gives
// such an object a checksum of its parts' checksums, which the SDK cannot
// check against the body it reads, and says so through its own logger,
// outside ktape's log and its --json lines. Nothing is lost: a segment
// read is checked against its SHA-256 and its batches' CRCs.
var readOptions = &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
	var opts *[]func(*s3.Options)
	if as(&opts) {
		*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	}
	return nil
}}

// Get reads a whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.do(ctx, "get "+key, func() error {
		r, err := s.bucket.NewReader(ctx, key, readOptions)
		if err != nil {
			return err
		}
		defer r.Close()
		// Sized from the object, as bucket.ReadAll does: a segment is
		// read into one buffer, not grown by doubling.
		out = make([]byte, r.Size())
		_, err = io.ReadFull(r, out)
		return err
	})
	return out, err
}

// GetRange reads length bytes from offset of an object.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	var out []byte
	err := s.do(ctx, fmt.Sprintf("get %s [%d,+%d)", key, offset, length), func() error {
		r, err := s.bucket.NewRangeReader(ctx, key, offset, length, readOptions)
		if err != nil {
			return err
		}
		defer r.Close()
		out, err = io.ReadAll(r)
		if errors.Is(err, io.ErrUnexpectedEOF) || err == nil && int64(len(out)) != length {
			err = shortBody(int64(len(out)), offset, length, r.Size())
		}
		return err
	})
	return out, err
}

// Exists reports whether an object exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := s.do(ctx, "stat "+key, func() error {
		var err error
		ok, err = s.bucket.Exists(ctx, key)
		return err
	})
	return ok, err
}

// List returns the keys under prefix, in lexical order.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := s.do(ctx, "list "+prefix, func() error {
		keys = keys[:0]
		it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
		for {
			obj, err := it.Next(ctx)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if !obj.IsDir && !(s.dir != "" && fileblobTemp.MatchString(obj.Key)) {
				keys = append(keys, obj.Key)
			}
		}
	})
	return keys, err
}

// fileblobTemp matches the temporary file gocloud's file driver writes an
// object to, beside its final name (<key>.<nanoseconds in hex>.tmp), until
// it renames it into place: not an object, and left behind for good by a
// process killed mid-write. No repository key ends so.
var fileblobTemp = regexp.MustCompile(`\.[0-9a-f]{1,16}\.tmp$`)

// Delete removes an object (pruning; a repository never deletes during a
// backup).
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.do(ctx, "delete "+key, func() error { return s.bucket.Delete(ctx, key) })
}
