package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// ReadSlack is the room ReadRange needs in buf beyond the bytes read: a
// local read is widened to whole directAlign blocks at both ends so that
// it can bypass the page cache.
const ReadSlack = 2 * directAlign

// ReadRange reads length bytes from offset of an object into buf's memory
// and returns them: a slice of buf, which must have a capacity of at least
// length+ReadSlack. It is GetRange for callers that reuse their buffers
// (a restore reads a whole repository through a few of them).
//
// A local object is read with direct I/O where the file system takes it
// and buf is aligned to directAlign: the device writes straight into buf,
// with no copy out of the page cache, no page cache to fill, and none of
// the restored data crowding out what the machine caches for others. The
// returned bytes then start up to a block into buf.
func (s *Store) ReadRange(ctx context.Context, key string, offset, length int64, buf []byte) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("storage: get %s [%d,+%d): negative range", key, offset, length)
	}
	if int64(cap(buf)) < length+ReadSlack {
		return nil, fmt.Errorf("storage: get %s [%d,+%d): buffer of %d bytes, %d needed", key, offset, length, cap(buf), length+ReadSlack)
	}
	if length == 0 {
		return buf[:0], nil
	}
	buf = buf[:cap(buf)]
	var out []byte
	err := s.do(ctx, fmt.Sprintf("get %s [%d,+%d)", key, offset, length), func() error {
		var err error
		if s.dir != "" {
			out, err = s.readLocal(key, offset, length, buf)
			return err
		}
		r, err := s.bucket.NewRangeReader(ctx, key, offset, length, readOptions)
		if err != nil {
			return err
		}
		defer r.Close()
		out = buf[:length]
		if n, err := io.ReadFull(r, out); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return shortBody(int64(n), offset, length, r.Size())
			}
			return err
		}
		return nil
	})
	return out, err
}

// readLocal reads a local object's range into buf, with direct I/O if it
// can: the read is widened to aligned blocks, and the object's last block
// may come back short.
func (s *Store) readLocal(key string, offset, length int64, buf []byte) ([]byte, error) {
	path := filepath.Join(s.dir, filepath.FromSlash(key))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if length >= directAlign && aligned(buf) && setDirect(f, true) {
		start := offset &^ (directAlign - 1)
		end := (offset + length + directAlign - 1) &^ (directAlign - 1)
		n, err := readFull(f, buf[:end-start], start)
		switch {
		case err == nil || err == io.EOF:
			if int64(n) < offset+length-start {
				return nil, fmt.Errorf("%w: %d of %d bytes", errShortRead, max(0, int64(n)-(offset-start)), length)
			}
			directReads.Add(1)
			return buf[offset-start : offset-start+length], nil
		case !errors.Is(err, syscall.EINVAL):
			return nil, err
		}
		setDirect(f, false) // the file system takes no direct reads after all
	}
	out := buf[:length]
	n, err := readFull(f, out, offset)
	if err == io.EOF && int64(n) < length {
		return nil, fmt.Errorf("%w: %d of %d bytes", errShortRead, n, length)
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return out, nil
}

// readFull reads len(p) bytes at off, in pieces of at most readPiece: on
// this project's VMs single reads of many MiB cost several times the
// system time of reads of one (see writePiece). It returns io.EOF with
// the bytes read if the file ends first.
func readFull(f *os.File, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.ReadAt(p[n:min(len(p), n+readPiece)], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

const readPiece = 1 << 20

// directReads counts reads done with direct I/O, for tests.
var directReads atomic.Int64

// errCutShort: a body that ended before the bytes its object holds, cut
// on the way (a connection lost in the middle of the answer). Unlike
// errShortRead it is transient: another attempt reads the whole range.
var errCutShort = errors.New("body cut short")

// shortBody is the error for a range read of an object of size bytes
// that delivered n of length bytes from offset: transient when the object
// holds the whole range, errShortRead when it does not.
func shortBody(n, offset, length, size int64) error {
	if offset+length <= size {
		return fmt.Errorf("%w: %d of %d bytes, and the object holds %d: %w", errCutShort, n, length, size, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %d of %d bytes", errShortRead, n, length)
}
