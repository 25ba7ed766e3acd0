package restore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
)

// Three workers of one group share a restore: together they write what
// one Run writes, record by record (read by franz-go), every batch sent
// once across them, and the group offsets are committed as one Run
// commits them.
func TestRestoreWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, kfaketest.Topics(6, "orders"), kfaketest.Topics(3, "pay"))
	for b := range 18 {
		e.src.Produce(t, "orders", int32(b%6), records(fmt.Sprint("o", b), 12)...)
		e.src.Produce(t, "pay", int32(b%3), records(fmt.Sprint("p", b), 5)...)
	}
	if _, err := e.sc.CommitGroupOffsets(ctx, "g1", map[client.TopicPartition]client.GroupOffset{
		{Topic: "orders", Partition: 0}: {Offset: 20, LeaderEpoch: -1}, {Topic: "pay", Partition: 2}: {Offset: 7, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	m := e.backup(t)
	opts := Options{Groups: true}
	ref := kfaketest.Start(t)
	one, err := Run(ctx, newClient(t, ref), e.r, m, opts)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	stats := make([]Stats, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = RunWorkers(ctx, newClient(t, e.dst), e.r, m, opts, Workers{Group: "restorers", Poll: 100 * time.Millisecond,
				SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second, HeartbeatInterval: 200 * time.Millisecond})
		}()
	}
	wg.Wait()
	var batches int64
	var committed []string
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if stats[i].ID != stats[0].ID {
			t.Fatalf("worker %d restored %s, worker 0 %s", i, stats[i].ID, stats[0].ID)
		}
		batches += stats[i].Batches
		committed = append(committed, stats[i].GroupsCommitted...)
		t.Logf("worker %d: %d partitions, %d batches, %d already restored", i, stats[i].Partitions, stats[i].Batches, stats[i].AlreadyRestored)
	}
	if batches != one.Batches {
		t.Errorf("the workers sent %d batches, one Run %d", batches, one.Batches)
	}
	if !slices.Contains(committed, "g1") {
		t.Errorf("no worker committed group g1: %v", committed)
	}
	sameTopic(t, ref, e.dst, "orders")
	sameTopic(t, ref, e.dst, "pay")
	want, err := newClient(t, ref).FetchGroupOffsets(ctx, []string{"g1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.dc.FetchGroupOffsets(ctx, []string{"g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(want["g1"]) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("group offsets %v, one Run committed %v", got, want)
	}
	// Workers started again find the restore done.
	st, err := RunWorkers(ctx, newClient(t, e.dst), e.r, m, opts, Workers{Group: "restorers"})
	if err != nil || !st.Complete || st.Batches != 0 {
		t.Fatalf("a worker after the end: %+v, %v", st, err)
	}
}

// A restore found done whose group offsets were never committed (its last
// worker killed between recording the restore done and committing them;
// here, a restore run without Groups, which gives the same restore): a
// worker started again commits them, as Run does when run again after it
// finished.
func TestRestoreWorkersCommitGroupsOfDoneRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := newEnv(t, kfaketest.Topics(2, "orders"))
	for b := range 4 {
		e.src.Produce(t, "orders", int32(b%2), records(fmt.Sprint("o", b), 10)...)
	}
	if _, err := e.sc.CommitGroupOffsets(ctx, "g1", map[client.TopicPartition]client.GroupOffset{
		{Topic: "orders", Partition: 1}: {Offset: 12, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	m := e.backup(t)
	ref := kfaketest.Start(t)
	if _, err := Run(ctx, newClient(t, ref), e.r, m, Options{Groups: true}); err != nil {
		t.Fatal(err)
	}
	want, err := newClient(t, ref).FetchGroupOffsets(ctx, []string{"g1"})
	if err != nil || len(want["g1"]) != 1 {
		t.Fatalf("one Run committed %v, %v", want, err)
	}
	first, err := Run(ctx, e.dc, e.r, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.dc.FetchGroupOffsets(ctx, []string{"g1"}); err != nil || len(got["g1"]) != 0 {
		t.Fatalf("a restore without Groups committed %v, %v", got, err)
	}
	st, err := RunWorkers(ctx, newClient(t, e.dst), e.r, m, Options{Groups: true}, Workers{Group: "restorers"})
	if err != nil || !st.Complete || st.ID != first.ID || !slices.Equal(st.GroupsCommitted, []string{"g1"}) {
		t.Fatalf("a worker of the done restore %s: %+v, %v", first.ID, st, err)
	}
	got, err := e.dc.FetchGroupOffsets(ctx, []string{"g1"})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("group offsets %v (%v), one Run committed %v", got, err, want)
	}
}
