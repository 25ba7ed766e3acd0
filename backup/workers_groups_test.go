package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
)

// planShared plans a shared run of group "g" as a leader would, and
// returns the worker that planned it, the plan and its items.
func planShared(t *testing.T, ctx context.Context, cl *client.Client, r *repo.Repository) (*sharedWorker, *repo.Manifest, []client.TopicPartition) {
	t.Helper()
	opts := Options{SegmentBytes: 1024, Version: "test", Workers: &Workers{Group: "g", Name: "w0"}}
	opts, _ = opts.withDefaults()
	sw := &sharedWorker{c: cl, r: r, opts: opts, w: *opts.Workers, assigned: map[client.TopicPartition]bool{}}
	items, shared, err := sw.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := r.Checkpoint(ctx, string(shared), 1)
	if err != nil {
		t.Fatal(err)
	}
	return sw, plan, items
}

// A worker assigned only some of the topics must be able to checkpoint
// when consumer groups have committed offsets on the other topics (any
// real cluster): the group rebalance routinely gives a worker a subset of
// topics (sticky quotas, more workers than partitions of a topic, ...).
func TestSharedCheckpointWithGroupsOnOtherTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := sharedCluster(t)
	cl := newClient(t, c)
	commitOffsetOnC(t, ctx, cl)
	_, r := openRepo(t, t.TempDir())
	sw, plan, items := planShared(t, ctx, cl, r)
	if len(plan.Groups) != 1 {
		t.Fatalf("plan groups %+v", plan.Groups)
	}
	var onlyA []client.TopicPartition
	for _, tp := range items {
		if tp.Topic == "a" {
			onlyA = append(onlyA, tp)
		}
	}
	if _, err := sw.work(ctx, nil, plan, onlyA); err != nil {
		t.Fatalf("worker holding only topic a: %v", err)
	}
}

// A worker with nothing assigned (more workers than partitions) must also
// be able to checkpoint.
func TestSharedCheckpointEmptyAssignmentWithGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := sharedCluster(t)
	cl := newClient(t, c)
	commitOffsetOnC(t, ctx, cl)
	_, r := openRepo(t, t.TempDir())
	sw, plan, _ := planShared(t, ctx, cl, r)
	if _, err := sw.work(ctx, nil, plan, nil); err != nil {
		t.Fatalf("worker with no partitions: %v", err)
	}
}

// A local repository: fileblob writes every object as <key>.<hex>.tmp
// beside it and renames it; a process killed mid-write leaves the .tmp
// file. Listing the run's worker checkpoints then must not fail, or no
// worker can ever continue the run and finalize cannot finish it.
func TestSharedCheckpointTempFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := sharedCluster(t)
	cl := newClient(t, c)
	dir := t.TempDir()
	_, r := openRepo(t, dir)
	sw, plan, items := planShared(t, ctx, cl, r)
	if _, err := sw.work(ctx, nil, plan, items); err != nil {
		t.Fatal(err)
	}
	// What fileblob leaves of a worker checkpoint write cut short.
	tmp := filepath.Join(dir, "checkpoints", plan.ID, "workers", "w1", "0000000001.json.18a2b3c4d5e6f708.tmp")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte(`{"format":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.BestPartitions(ctx, plan); err != nil {
		t.Errorf("BestPartitions with a temporary file beside the checkpoints: %v", err)
	}
	if _, err := Finalize(ctx, r, "g", "test"); err != nil {
		t.Errorf("Finalize of a complete run with a temporary file beside the checkpoints: %v", err)
	}
}

// End to end: 13 workers (one more than the partitions) share a snapshot of a cluster whose consumer
// groups have committed offsets on one topic.
func TestSharedBackupWithCommittedGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := sharedCluster(t)
	cl := newClient(t, c)
	commitOffsetOnC(t, ctx, cl)
	_, r := openRepo(t, t.TempDir())
	const n = 13 // one more than the partitions
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, _, err := runWorker(ctx, t, c, r, Options{SegmentBytes: 1024, Version: "test", CheckpointInterval: 200 * time.Millisecond},
				Workers{Group: "nightly", Name: fmt.Sprintf("w%d", i)})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("worker: %v", err)
		}
	}
}

// commitOffsetOnC commits an offset of group "app" on topic c only, which
// a plan records and a worker holding other topics must not trip over.
func commitOffsetOnC(t *testing.T, ctx context.Context, cl *client.Client) {
	t.Helper()
	if _, err := cl.CommitGroupOffsets(ctx, "app", map[client.TopicPartition]client.GroupOffset{{Topic: "c", Partition: 0}: {Offset: 3, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
}
