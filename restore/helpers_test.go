package restore

import (
	"context"
	"testing"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// env is a source cluster, a repository and a target cluster.
type env struct {
	src, dst *kfaketest.Cluster
	sc, dc   *client.Client
	r        *repo.Repository
	dir      string // the repository's directory
}

func newEnv(t *testing.T, topics ...kfaketest.Option) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{src: kfaketest.Start(t, topics...), dst: kfaketest.Start(t)}
	e.dir = t.TempDir()
	st, err := storage.Open(ctx, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if e.r, err = repo.Open(ctx, st, true); err != nil {
		t.Fatal(err)
	}
	if e.sc, err = client.New(ctx, e.src.Addrs(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sc.Close)
	if e.dc, err = client.New(ctx, e.dst.Addrs(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.dc.Close)
	return e
}

// backup takes a snapshot of the source, in small segments so that
// restores read several and range-read parts of them.
func (e *env) backup(t *testing.T) *repo.Manifest {
	t.Helper()
	m, _, err := backup.Run(context.Background(), e.sc, e.r, backup.Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
