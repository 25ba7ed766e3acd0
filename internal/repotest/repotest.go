// Package repotest checks backups in tests against the cluster they came
// from, reading the repository with franz-go's decoder, so that what ktape
// stored is judged by an independent implementation. The check itself is
// internal/crosscheck's, which ktape demo runs too; this package only
// turns its errors into test failures.
package repotest

import (
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
