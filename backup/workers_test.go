package backup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// sharedCluster is a cluster of 3 topics of 4 partitions, each partition
// with several batches.
func sharedCluster(t *testing.T) *kfaketest.Cluster {
	c := kfaketest.Start(t, kfaketest.Brokers(2), kfaketest.Topics(4, "a", "b", "c"))
	for _, topic := range []string{"a", "b", "c"} {
		for p := range int32(4) {
			for i := range 5 {
				c.Produce(t, topic, p, records(fmt.Sprintf("%s%d-%d", topic, p, i), 10+int(p))...)
			}
		}
	}
	return c
}

// singleBackup backs c up in one process, the reference a shared run
// must equal.
func singleBackup(ctx context.Context, t *testing.T, c *kfaketest.Cluster) (*storage.Store, *repo.Manifest, Stats) {
	t.Helper()
	st, r := openRepo(t, t.TempDir())
	m, stats, err := Run(ctx, newClient(t, c), r, Options{SegmentBytes: 1024, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return st, m, stats
}

// runWorker runs one worker of group to the end with its own client.
func runWorker(ctx context.Context, t *testing.T, c *kfaketest.Cluster, r *repo.Repository, opts Options, w Workers) (*repo.Manifest, Stats, error) {
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		return nil, Stats{}, err
	}
	defer cl.Close()
	if w.Poll == 0 {
		w.Poll = 100 * time.Millisecond
	}
	if w.SessionTimeout == 0 {
		w.SessionTimeout, w.RebalanceTimeout, w.HeartbeatInterval = 6*time.Second, 10*time.Second, 200*time.Millisecond
	}
	opts.Workers = &w
	return Run(ctx, cl, r, opts)
}

// Three workers of one group share a snapshot: together they write the
// backup one process would, byte for byte, every batch fetched once, and
// franz-go reads from it what the broker holds. One worker writes the
// manifest, all three return it, and no checkpoint is left.
func TestSharedBackupEqualsSingle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := sharedCluster(t)
	stOne, one, oneStats := singleBackup(ctx, t, c)

	st, r := openRepo(t, t.TempDir())
	var wg sync.WaitGroup
	ms := make([]*repo.Manifest, 3)
	stats := make([]Stats, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i], stats[i], errs[i] = runWorker(ctx, t, c, r, Options{SegmentBytes: 1024, Version: "test", CheckpointInterval: 200 * time.Millisecond},
				Workers{Group: "nightly", Name: fmt.Sprintf("w%d", i)})
		}()
	}
	wg.Wait()
	var batches int64
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if ms[i].ID != ms[0].ID {
			t.Fatalf("worker %d returned backup %s, worker 0 %s", i, ms[i].ID, ms[0].ID)
		}
		batches += stats[i].Batches
		t.Logf("worker %d: %d partitions, %d batches, %d checkpoints", i, stats[i].Partitions, stats[i].Batches, stats[i].Checkpoints)
	}
	m := ms[0]
	if m.WorkersGroup != "nightly" || m.Checkpoint {
		t.Fatalf("manifest: workers group %q, checkpoint %v", m.WorkersGroup, m.Checkpoint)
	}
	if batches != oneStats.Batches {
		t.Errorf("the workers fetched %d batches into the backup, one process %d: some were fetched twice or missed", batches, oneStats.Batches)
	}
	repotest.SameBatches(t, stOne, one, st, m)
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
	if left, err := st.List(ctx, "checkpoints/"); err != nil || len(left) > 0 {
		t.Fatalf("checkpoints left after the manifest: %v %v", left, err)
	}
	// A worker joining the group just after: it takes the finished run
	// for its own, and does nothing.
	c.Produce(t, "a", 0, records("after", 7)...)
	late, lateStats, err := runWorker(ctx, t, c, r, Options{Version: "test"}, Workers{Group: "nightly"})
	if err != nil || late.ID != m.ID || lateStats.Batches != 0 {
		t.Fatalf("a late worker: backup %v, %d batches, %v; want %s and nothing fetched", late, lateStats.Batches, err, m.ID)
	}
	// Past the window, the group's finished run is not a late worker's.
	if old, err := recentlyFinished(ctx, r, "nightly", time.Now().Add(RejoinWindow+time.Second)); err != nil || old != nil {
		t.Fatalf("past the rejoin window: %v, %v", old, err)
	}
	// The next run, under another group name, is a new, incremental
	// backup.
	next, _, err := runWorker(ctx, t, c, r, Options{Version: "test"}, Workers{Group: "nightly-2"})
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == m.ID || next.Parent != m.ID || next.Topic("a").Partition(0).To != m.Topic("a").Partition(0).To+7 {
		t.Fatalf("second run of the group: backup %s, parent %s, a/0 to %d", next.ID, next.Parent, next.Topic("a").Partition(0).To)
	}
	repotest.CheckAgainstBroker(t, c, st, next)
}

// stopOnFetch closes stop once n fetch events were seen.
type stopOnFetch struct {
	n    atomic.Int64
	at   int64
	stop chan struct{}
	once sync.Once
}

func (s *stopOnFetch) Planned(PartitionPlan) {}
func (s *stopOnFetch) Fetched(FetchEvent) {
	if s.n.Add(1) == s.at {
		s.once.Do(func() { close(s.stop) })
		// Fetched runs in the engine's loop: holding it lets the stop
		// reach the engine before it takes the rest of a small
		// topic, which one response per broker can hold whole.
		time.Sleep(200 * time.Millisecond)
	}
}
func (s *stopOnFetch) Stored(StoreEvent)            {}
func (s *stopOnFetch) Checkpointed(CheckpointEvent) {}

// A worker stopped part-way checkpoints its partitions and leaves; the
// workers that take them over continue where it stopped: the backup is the
// one-process backup, byte for byte, and no batch was fetched twice.
func TestSharedBackupHandover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := sharedCluster(t)
	stOne, one, oneStats := singleBackup(ctx, t, c)
	st, r := openRepo(t, t.TempDir())
	obs := &stopOnFetch{at: 3, stop: make(chan struct{})}
	_, first, err := runWorker(ctx, t, c, r, Options{SegmentBytes: 1024, Version: "test", Stop: obs.stop, Observer: obs, Memory: 8 << 20},
		Workers{Group: "g", Name: "first"})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("stopped worker: %v, want ErrStopped", err)
	}
	if first.Batches == 0 || first.Batches >= oneStats.Batches {
		t.Fatalf("the stopped worker fetched %d of %d batches: the test needs part of them", first.Batches, oneStats.Batches)
	}
	// Its checkpoint is a worker checkpoint of a shared run.
	runs, err := r.Unfinished(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("unfinished runs %v %v", runs, err)
	}
	refs, err := r.WorkerCheckpoints(ctx, runs[0].ID)
	if err != nil || len(refs) == 0 || refs[0].Worker != "first" {
		t.Fatalf("worker checkpoints %v %v", refs, err)
	}
	var wg sync.WaitGroup
	ms := make([]*repo.Manifest, 2)
	stats := make([]Stats, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i], stats[i], errs[i] = runWorker(ctx, t, c, r, Options{SegmentBytes: 1024, Version: "test"}, Workers{Group: "g", Name: []string{"first", "second"}[i]})
		}()
	}
	wg.Wait()
	batches := first.Batches
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		batches += stats[i].Batches
	}
	if ms[0].ID != runs[0].ID || ms[1].ID != runs[0].ID {
		t.Fatalf("the workers finished %s and %s, not the stopped worker's run %s", ms[0].ID, ms[1].ID, runs[0].ID)
	}
	if batches != oneStats.Batches {
		t.Errorf("the workers fetched %d batches into the backup, one process %d", batches, oneStats.Batches)
	}
	repotest.SameBatches(t, stOne, one, st, ms[0])
	repotest.CheckAgainstBroker(t, c, st, ms[0])
}

// Finalize writes the manifest of a run whose partitions are all done but
// whose workers stopped before writing it, and refuses one with partitions
// left, saying how many.
func TestSharedBackupFinalize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := sharedCluster(t)
	st, r := openRepo(t, t.TempDir())
	obs := &stopOnFetch{at: 2, stop: make(chan struct{})}
	_, _, err := runWorker(ctx, t, c, r, Options{SegmentBytes: 1024, Version: "test", Stop: obs.stop, Observer: obs, Memory: 8 << 20}, Workers{Group: "g"})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("stopped worker: %v", err)
	}
	if _, err := Finalize(ctx, r, "g", "test"); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("finalize of an incomplete run: %v, want ErrIncomplete", err)
	}
	if _, err := Finalize(ctx, r, "other", "test"); err == nil {
		t.Fatal("finalize of a group with no run: no error")
	}
	// Finish every partition in a worker checkpoint, as a worker stopped
	// right after its last partition would leave it, without a manifest.
	runs, _ := r.Unfinished(ctx)
	plan, err := r.Checkpoint(ctx, runs[0].ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{SegmentBytes: 1024, Version: "test", Workers: &Workers{Group: "g", Name: "late"}}
	opts, _ = opts.withDefaults()
	sw := &sharedWorker{c: newClient(t, c), r: r, opts: opts, w: *opts.Workers, assigned: map[client.TopicPartition]bool{}}
	var items []client.TopicPartition
	for _, tp := range plan.Topics {
		for _, p := range tp.Partitions {
			items = append(items, client.TopicPartition{Topic: tp.Name, Partition: p.Partition})
		}
	}
	if _, err := sw.work(ctx, nil, plan, items); err != nil {
		t.Fatal(err)
	}
	m, err := Finalize(ctx, r, "g", "test")
	if err != nil {
		t.Fatal(err)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
	if _, err := Finalize(ctx, r, "g", "test"); err == nil {
		t.Fatal("a second finalize found a run to finish")
	}
}
