// Package repotest checks backups in tests against the cluster they came
// from, reading the repository with franz-go's decoder, so that what ktape
// stored is judged by an independent implementation. The check itself is
// internal/crosscheck's, which ktape demo runs too; this package only
// turns its errors into test failures.
package repotest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// CheckAgainstBroker checks every partition of m: the repository's
// batches, decoded by franz-go, equal what franz-go reads from the broker
// in [max(From, LogStart), To) as a read_uncommitted consumer (markers and
// aborted data included), record by record; what lies below the log start
// the broker no longer has, and verify --deep accounts for it. See
// crosscheck.Backup.
func CheckAgainstBroker(t testing.TB, c *kfaketest.Cluster, st *storage.Store, m *repo.Manifest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := crosscheck.Backup(ctx, crosscheck.NewCluster(c.Client(t)), st, m); err != nil {
		t.Fatal(err)
	}
}

// SameBatches fails unless got holds every partition of want over the same
// range with the same batches, byte for byte (however their segments are
// cut), and neither holds a partition without batches; it returns how many
// partitions it compared. Two backups of the same data, by one process or
// by several sharing it, must compare equal.
func SameBatches(t testing.TB, stWant *storage.Store, want *repo.Manifest, stGot *storage.Store, got *repo.Manifest) int {
	t.Helper()
	ctx := context.Background()
	if len(got.Topics) != len(want.Topics) {
		t.Fatalf("%d topics, want %d", len(got.Topics), len(want.Topics))
	}
	n := 0
	for _, wt := range want.Topics {
		gt := got.Topic(wt.Name)
		if gt == nil || len(gt.Partitions) != len(wt.Partitions) {
			t.Fatalf("topic %s: missing, or not %d partitions", wt.Name, len(wt.Partitions))
		}
		for i := range wt.Partitions {
			wp := &wt.Partitions[i]
			gp := gt.Partition(wp.Partition)
			if gp == nil || gp.From != wp.From || gp.To != wp.To || len(gp.Gaps) != len(wp.Gaps) {
				t.Fatalf("%s/%d: %+v, want [%d, %d) with %d gaps", wt.Name, wp.Partition, gp, wp.From, wp.To, len(wp.Gaps))
			}
			wb, err := crosscheck.RepositoryBatches(ctx, stWant, wt.Name, wp)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := crosscheck.RepositoryBatches(ctx, stGot, gt.Name, gp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wb, gb) || len(wb) == 0 {
				t.Errorf("%s/%d: %d bytes of batches, want %d, byte for byte the same", wt.Name, wp.Partition, len(gb), len(wb))
			}
			n++
		}
	}
	return n
}
