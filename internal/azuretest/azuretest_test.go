package azuretest_test

import (
	"bytes"
	"context"
	"net/url"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob"
	"gocloud.dev/gcerrors"

	"github.com/ktape/ktape/internal/azuretest"
	"github.com/ktape/ktape/storage"
)

// The server started takes writes and reads back what was written.
func TestStart(t *testing.T) {
	u := azuretest.Start(t)
	if u == "" {
		t.Skip("Azurite not installed")
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

// The emulator itself refuses a create-if-absent write (If-None-Match: *)
// over an existing blob, both as one Put Blob and as blocks committed by a
// Put Block List, and a blob written in blocks has them. storage's
// ErrConflict rests on this; here it is checked under storage, straight
// through gocloud.
func TestPreconditionEnforced(t *testing.T) {
	u := azuretest.Start(t)
	if u == "" {
		t.Skip("Azurite not installed")
	}
	ctx := context.Background()
	p, _ := url.Parse(u)
	p.Path = ""
	b, err := blob.OpenBucket(ctx, p.String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const block = 1 << 20
	for name, tc := range map[string]struct{ size, blocks int }{
		"single": {10, 0},          // Put Blob: no block list
		"blocks": {2*block + 1, 3}, // Put Block ×3, Put Block List
	} {
		t.Run(name, func(t *testing.T) {
			first, second := bytes.Repeat([]byte{1}, tc.size), bytes.Repeat([]byte{2}, tc.size)
			// Upload, not WriteAll: gocloud v0.47.0's azureblob writer
			// dereferences a nil pipe when a written (not uploaded) blob
			// fails, as the second one must (see storage.Create).
			opts := &blob.WriterOptions{IfNotExist: true, BufferSize: block, ContentType: "application/octet-stream"}
			if err := b.Upload(ctx, name, bytes.NewReader(first), opts); err != nil {
				t.Fatal(err)
			}
			var c *container.Client
			if !b.As(&c) {
				t.Fatal("no container client")
			}
			bl, err := c.NewBlockBlobClient(name).GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(bl.CommittedBlocks) != tc.blocks {
				t.Fatalf("%d committed blocks, want %d", len(bl.CommittedBlocks), tc.blocks)
			}
			err = b.Upload(ctx, name, bytes.NewReader(second), opts)
			if gcerrors.Code(err) != gcerrors.FailedPrecondition {
				t.Fatalf("a second create-if-absent: %v, want FailedPrecondition", err)
			}
			if got, err := b.ReadAll(ctx, name); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("after the refused write: %d bytes, %v; want the first content", len(got), err)
			}
		})
	}
}
