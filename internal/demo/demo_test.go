package demo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

const testRecords = 600

// The demo runs every step in order, and its figures add up: what was
// checked is what was produced less what was deleted, in every
// partition, with every group offset.
func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	var steps []string
	s, err := Run(context.Background(), Options{Records: testRecords, Repo: dir, Version: "test",
		Progress: func(step string, _ *Summary) { steps = append(steps, step) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{StepCluster, StepProduce, StepBackup, StepVerify, StepCheck, StepRestore}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	p, c := s.Produced, s.Check
	switch {
	case !strings.HasPrefix(s.Cluster.ID, clusterIDPrefix) || len(s.Cluster.Brokers) != DefaultBrokers:
		t.Errorf("cluster %+v", s.Cluster)
	case p.Topics != 7 || p.Partitions != 20 || p.Records < testRecords*9/10 || p.Records > testRecords:
		t.Errorf("produced %+v", p)
	case p.Committed != 6 || p.Aborted != 2 || p.Markers != 16 || p.Deleted == 0 || p.EmptyPartitions != 2 || p.Groups != 2 || p.GroupOffsets != 18:
		t.Errorf("produced %+v", p)
	case s.Backup.Partitions != 20 || s.Backup.Segments != 18 || s.Backup.Groups != 2 || s.Verify.Segments != 18 || s.Verify.Problems != 0:
		t.Errorf("backup %+v, verify %+v", s.Backup, s.Verify)
	case c.Partitions != 20 || c.Records != p.Records-p.Deleted || c.Markers != p.Markers || c.GroupOffsets != p.GroupOffsets || c.TopicConfigs != 7:
		t.Errorf("check %+v, produced %+v", c, p)
	case !s.Restore.Available || s.Restore.Partitions != 20 || s.Restore.Records == 0 || s.Restore.Records >= c.Records || s.Restore.RecordsCompared != s.Restore.Records || s.Restore.GroupOffsets != p.GroupOffsets:
		t.Errorf("restore %+v", s.Restore)
	case !s.Kept || s.Repository != dir:
		t.Errorf("repository %s kept %v, want %s kept", s.Repository, s.Kept, dir)
	}
	// The backup is there, and a second demo in the same repository is
	// a new backup of a new cluster, not an increment of the first.
	s2, err := Run(context.Background(), Options{Records: 50, Repo: dir})
	if err != nil {
		t.Fatalf("second demo in %s: %v", dir, err)
	}
	st, err := storage.OpenExisting(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(context.Background(), st, false)
	if err != nil {
		t.Fatal(err)
	}
	// Ids sort by their second, then at random: two in one second may
	// come either way.
	if ids, err := r.Backups(context.Background()); err != nil || !slices.Equal(ids, slices.Sorted(slices.Values([]string{s.Backup.ID, s2.Backup.ID}))) {
		t.Fatalf("backups %v (%v), want %s and %s", ids, err, s.Backup.ID, s2.Backup.ID)
	}
}

// Without Repo, the repository is a temporary directory, gone afterwards.
func TestRunTemporary(t *testing.T) {
	s, err := Run(context.Background(), Options{Records: 50, Brokers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kept || s.Repository == "" {
		t.Fatalf("summary %+v", s)
	}
	if _, err := os.Stat(s.Repository); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary repository %s: %v; want it removed", s.Repository, err)
	}
}

// The demo refuses a repository that holds a backup of another cluster.
func TestRunRefusesOtherRepositories(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	c.Produce(t, "t", 0, &kgo.Record{Value: []byte("real data")})
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir := t.TempDir()
	st, r := openRepo(t, dir)
	defer st.Close()
	m, _, err := backup.Run(ctx, cl, r, backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, Options{Records: 50, Repo: dir})
	if err == nil || !strings.Contains(err.Error(), m.ID) || !strings.Contains(err.Error(), `"kfake"`) {
		t.Fatalf("got %v; want a refusal naming backup %s of cluster kfake", err, m.ID)
	}
}

func openRepo(t *testing.T, dir string) (*storage.Store, *repo.Repository) {
	t.Helper()
	st, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, true)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, r
}

// backedUp runs the demo's first steps by hand, so that a test can
// tamper with the result before the checks.
func backedUp(t *testing.T) (e *env, dir string, st *storage.Store, r *repo.Repository, m *repo.Manifest, smp *sample) {
	t.Helper()
	ctx := context.Background()
	e, err := start(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	if smp, err = populate(ctx, e.c, e.seeds, 300); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	st, r = openRepo(t, dir)
	t.Cleanup(func() { st.Close() })
	if m, _, err = backup.Run(ctx, e.c, r, backup.Options{Full: true, Fresh: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(ctx, r, m); err != nil {
		t.Fatalf("untouched backup: verify: %v", err)
	}
	if _, err := check(ctx, e.kgo, st, m, smp); err != nil {
		t.Fatalf("untouched backup: check: %v", err)
	}
	return e, dir, st, r, m, smp
}

// A damaged byte in a segment fails both verify and the record check,
// each naming the segment; the check names the partition too.
func TestCheckFindsDamage(t *testing.T) {
	ctx := context.Background()
	e, dir, st, r, m, smp := backedUp(t)
	tp := m.Topic("codec.gzip").Partition(1)
	key := tp.Segments[0].Key
	path := filepath.Join(dir, filepath.FromSlash(key))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(ctx, r, m); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("verify: got %v, want an error naming %s", err, key)
	}
	if _, err := check(ctx, e.kgo, st, m, smp); err == nil || !strings.Contains(err.Error(), "codec.gzip/1") || !strings.Contains(err.Error(), key) ||
		!strings.Contains(err.Error(), "the batch at offset ") {
		t.Errorf("check: got %v, want an error naming codec.gzip/1, %s and the batch's offset", err, key)
	}
}

// Differences between the backup and the cluster fail the check, naming
// where: a record the backup lacks, a range that stops short, a group
// offset that differs, a topic config missing.
func TestCheckFindsDifferences(t *testing.T) {
	ctx := context.Background()
	e, _, st, _, m, smp := backedUp(t)

	g := &m.Groups[0]
	g.Offsets[0].Offset++
	if _, err := check(ctx, e.kgo, st, m, smp); err == nil || !strings.Contains(err.Error(), "group "+g.Group) ||
		!strings.Contains(err.Error(), g.Offsets[0].Topic) {
		t.Errorf("group offset: got %v", err)
	}
	g.Offsets[0].Offset--

	delete(m.Topic("txn").Configs, retentionKey)
	if _, err := check(ctx, e.kgo, st, m, smp); err == nil || !strings.Contains(err.Error(), "txn: the backup has topic configs") {
		t.Errorf("topic config: got %v", err)
	}
	m.Topic("txn").Configs[retentionKey] = retentionValue

	// The cluster moves on: the backup's range no longer reaches its end.
	p := m.Topic("codec.zstd").Partition(2)
	end := p.To
	late := []*kgo.Record{{Topic: "codec.zstd", Partition: 2, Value: []byte("late")}}
	if err := smp.produce(ctx, e.seeds, kgo.NoCompression(), late); err != nil {
		t.Fatal(err)
	}
	if _, err := check(ctx, e.kgo, st, m, smp); err == nil || !strings.Contains(err.Error(), "codec.zstd/2: the backup ends at") {
		t.Errorf("short range: got %v", err)
	}

	// The manifest claims the new record, but no segment holds it: the
	// record comparison names its offset.
	p.To = end + 1
	_, err := check(ctx, e.kgo, st, m, smp)
	var d *crosscheck.DiffError
	if !errors.As(err, &d) || d.Topic != "codec.zstd" || d.Partition != 2 || d.Offset != end {
		t.Errorf("missing record: got %v, want a difference at codec.zstd/2 offset %d", err, end)
	}
}
