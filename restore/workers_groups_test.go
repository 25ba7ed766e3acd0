package restore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
)

// The worker that records a restore done commits the group offsets after
// done.json is written. If it dies in between, workers started again
// commit them, as Run does on a finished restore. Simulated with a restore
// finished without --groups, then workers run with them.
func TestRestoreWorkersCommitGroupsOfAFinishedRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, kfaketest.Topics(2, "orders"))
	for b := range 6 {
		e.src.Produce(t, "orders", int32(b%2), records(fmt.Sprint("o", b), 10)...)
	}
	if _, err := e.sc.CommitGroupOffsets(ctx, "g1", map[client.TopicPartition]client.GroupOffset{
		{Topic: "orders", Partition: 0}: {Offset: 20, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	m := e.backup(t)
	// done.json written, groups not committed: as a finisher killed
	// between PutRestoreDone and commitGroups leaves it.
	if _, err := Run(ctx, newClient(t, e.dst), e.r, m, Options{}); err != nil {
		t.Fatal(err)
	}
	st, err := RunWorkers(ctx, newClient(t, e.dst), e.r, m, Options{Groups: true}, Workers{Group: "restorers",
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second, HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.dc.FetchGroupOffsets(ctx, []string{"g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got["g1"]) == 0 {
		t.Errorf("RunWorkers on a finished restore committed no group offsets (stats %v); Run would have", st.GroupsCommitted)
	}
}
