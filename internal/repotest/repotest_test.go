package repotest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recorder is a testing.TB whose Fatal ends only the goroutine it is
// called on, so a test can check that a check fails.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func check(t *testing.T, c *kfaketest.Cluster, st *storage.Store, m *repo.Manifest) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		repotest.CheckAgainstBroker(r, c, st, m)
	}()
	<-done
	return r.failed
}

// The check passes on a faithful backup and fails when the repository
// lacks a record the broker has in the backed-up range.
func TestCheckAgainstBroker(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Topics(1, "t"))
	c.Produce(t, "t", 0, &kgo.Record{Value: []byte("a")}, &kgo.Record{Value: []byte("b")})
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := backup.Run(ctx, cl, r, backup.Options{SkipGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg := check(t, c, st, m); msg != "" {
		t.Fatalf("faithful backup: %s", msg)
	}
	c.Produce(t, "t", 0, &kgo.Record{Value: []byte("c")})
	m.Topics[0].Partitions[0].To++
	if msg := check(t, c, st, m); msg == "" {
		t.Fatal("a record missing from the repository went unnoticed")
	}
}
