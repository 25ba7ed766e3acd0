package s3test_test

import (
	"context"
	"testing"

	"github.com/ktape/ktape/internal/s3test"
	"github.com/ktape/ktape/storage"
)

// The server started takes writes and reads back what was written.
func TestStart(t *testing.T) {
	url := s3test.Start(t)
	if url == "" {
		t.Skip("versitygw not installed")
	}
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
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
