package gcstest_test

import (
	"bytes"
	"context"
	"net/url"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/gcsblob"
	"gocloud.dev/gcerrors"

	"github.com/ktape/ktape/internal/gcstest"
	"github.com/ktape/ktape/storage"
)

// The server started takes writes and reads back what was written.
func TestStart(t *testing.T) {
	u := gcstest.Start(t)
	if u == "" {
		t.Skip("fake-gcs-server not installed")
	}
	ctx := context.Background()
	st, err := storage.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Create(ctx, "a", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if b, err := st.Get(ctx, "a"); err != nil || string(b) != "b" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

// The emulator itself refuses a create-if-absent write over an existing
// object (ifGenerationMatch=0), both as a single request and as a
// resumable upload in chunks, whose precondition is given when the
// session starts and checked when it ends. storage's ErrConflict rests on
// this; here it is checked under storage, straight through gocloud.
func TestPreconditionEnforced(t *testing.T) {
	u := gcstest.Start(t)
	if u == "" {
		t.Skip("fake-gcs-server not installed")
	}
	ctx := context.Background()
	p, _ := url.Parse(u)
	b, err := blob.OpenBucket(ctx, "gs://"+p.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const chunk = 256 << 10 // the smallest chunk GCS takes
	for name, size := range map[string]int{"single": 10, "resumable": 2*chunk + 1} {
		t.Run(name, func(t *testing.T) {
			first, second := bytes.Repeat([]byte{1}, size), bytes.Repeat([]byte{2}, size)
			opts := &blob.WriterOptions{IfNotExist: true, BufferSize: chunk}
			if err := b.WriteAll(ctx, name, first, opts); err != nil {
				t.Fatal(err)
			}
			err := b.WriteAll(ctx, name, second, opts)
			if gcerrors.Code(err) != gcerrors.FailedPrecondition {
				t.Fatalf("a second create-if-absent: %v, want FailedPrecondition", err)
			}
			if got, err := b.ReadAll(ctx, name); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("after the refused write: %d bytes, %v; want the first content", len(got), err)
			}
		})
	}
}
