package repo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ktape/ktape/storage"
)

// A shared run's progress: the furthest account of each partition among
// the plan and the worker checkpoints wins; worker checkpoints are
// refused when they are not a shared run's, name another topic id or
// start elsewhere than the plan; an object under workers/ that is not a
// worker checkpoint's name is an error, not skipped; Unreferenced counts
// the segments worker checkpoints name; DeleteRun removes all of it.
func TestWorkerCheckpoints(t *testing.T) {
	ctx := context.Background()
	st, r := plainRepo(t)
	full := writeBackup(t, r)
	if err := st.Delete(ctx, "backups/"+full.ID+".json"); err != nil {
		t.Fatal(err)
	}
	// The plan: every partition at its start, nothing stored yet.
	plan := *full
	plan.ID, plan.Checkpoint, plan.WorkersGroup = NewBackupID(time.Now()), true, "g"
	plan.Topics = []Topic{full.Topics[0]}
	plan.Topics[0].Partitions = nil
	for _, p := range full.Topics[0].Partitions {
		p.To, p.Segments = p.From, nil
		plan.Topics[0].Partitions = append(plan.Topics[0].Partitions, p)
	}
	if err := r.PutCheckpoint(ctx, &plan, 1); err != nil {
		t.Fatal(err)
	}
	worker := func(parts ...Partition) *Manifest {
		m := plan
		m.Topics = []Topic{plan.Topics[0]}
		m.Topics[0].Partitions = parts
		return &m
	}
	p0, p1 := full.Topics[0].Partitions[0], full.Topics[0].Partitions[1]
	half := p0
	half.Segments, half.To = p0.Segments[:1], p0.Segments[0].LastOffset+1
	// w1 got half of partition 0; w2 all of it and all of partition 1.
	for _, w := range []struct {
		name string
		m    *Manifest
	}{{"w1", worker(half)}, {"w2", worker(p0, p1)}} {
		if err := r.PutWorkerCheckpoint(ctx, WorkerCheckpointRef{Run: plan.ID, Worker: w.name, Sequence: 1}, w.m); err != nil {
			t.Fatal(err)
		}
	}
	best, read, err := r.BestPartitions(ctx, &plan)
	if err != nil || len(read) != 2 {
		t.Fatalf("best: %v, read %v", err, read)
	}
	if b := best["fixtures"][0]; b.To != p0.To || len(b.Segments) != len(p0.Segments) {
		t.Fatalf("partition 0: %+v, want w2's, to %d", b, p0.To)
	}
	if b := best["fixtures"][1]; b.To != p1.To {
		t.Fatalf("partition 1 to %d, want %d", b.To, p1.To)
	}
	if b := best["fixtures"][2]; b.To != b.From {
		t.Fatalf("partition 2, in no worker checkpoint: %+v, want the plan's", b)
	}
	garbage, err := r.Unreferenced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range garbage {
		for _, s := range p0.Segments {
			if k == s.Key {
				t.Fatalf("Unreferenced lists %s, which a worker checkpoint names", k)
			}
		}
	}

	// Refusals.
	notShared := worker(half)
	notShared.WorkersGroup = ""
	if err := r.PutWorkerCheckpoint(ctx, WorkerCheckpointRef{Run: plan.ID, Worker: "w3", Sequence: 1}, notShared); err == nil {
		t.Fatal("a worker checkpoint without a workers group was stored")
	}
	if err := r.PutWorkerCheckpoint(ctx, WorkerCheckpointRef{Run: plan.ID, Worker: "bad/name", Sequence: 1}, worker(half)); err == nil {
		t.Fatal("a worker name with a slash was taken")
	}
	moved := half
	moved.From++
	if err := r.PutWorkerCheckpoint(ctx, WorkerCheckpointRef{Run: plan.ID, Worker: "w4", Sequence: 1}, worker(moved)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.BestPartitions(ctx, &plan); err == nil {
		t.Fatal("a worker checkpoint starting a partition elsewhere than the plan was taken")
	}
	if err := r.DeleteWorkerCheckpoint(ctx, WorkerCheckpointRef{Run: plan.ID, Worker: "w4", Sequence: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "checkpoints/"+plan.ID+"/workers/w5/latest.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WorkerCheckpoints(ctx, plan.ID); err == nil {
		t.Fatal("an object under workers/ named unlike a worker checkpoint was skipped silently")
	}

	if err := r.DeleteRun(ctx, plan.ID); err != nil {
		t.Fatal(err)
	}
	if left, err := st.List(ctx, "checkpoints/"); err != nil || len(left) != 0 {
		t.Fatalf("after DeleteRun: %v %v", left, err)
	}
	if _, err := r.Checkpoint(ctx, plan.ID, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the plan after DeleteRun: %v", err)
	}
}
