package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestClientMetadataAndLeaders(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(4, "events"))
	ctx := context.Background()
	cl, err := New(ctx, c.ListenAddrs()[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := cl.Metadata()
	if len(m.Brokers) != 3 || m.ClusterID == "" {
		t.Fatalf("brokers %v, cluster %q", m.Brokers, m.ClusterID)
	}
	if _, err := cl.RefreshMetadata(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ev := cl.Metadata().Topics["events"]
	if ev == nil || len(ev.Partitions) != 4 || ev.ID == ([16]byte{}) {
		t.Fatalf("events: %+v", ev)
	}
	for _, p := range ev.Partitions {
		l, err := cl.Leader(ctx, "events", p.Partition)
		if err != nil || l.Leader != p.Leader {
			t.Fatalf("leader of %d: %+v %v", p.Partition, l, err)
		}
		conn, err := cl.BrokerConn(ctx, l.Leader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := metadata(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}

	// A leader change shows after a refresh.
	old := ev.Partitions[0].Leader
	next := (old + 1) % 3
	if err := c.MoveTopicPartition("events", 0, next); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RefreshMetadata(ctx, []string{"events"}); err != nil {
		t.Fatal(err)
	}
	if got := cl.Metadata().Topics["events"].Partitions[0]; got.Leader != next || got.LeaderEpoch <= ev.Partitions[0].LeaderEpoch {
		t.Fatalf("after move: leader %d epoch %d, want %d and a higher epoch than %d", got.Leader, got.LeaderEpoch, next, ev.Partitions[0].LeaderEpoch)
	}

	if _, err := cl.Leader(ctx, "no-such-topic", 0); !errors.Is(err, protocol.ErrUnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}
}

// A client survives a broker connection failure by re-dialling.
func TestClientRedials(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cl, err := New(ctx, c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conn, err := cl.AnyConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, err := cl.RefreshMetadata(ctx, []string{"orders"}); err != nil {
		t.Fatal(err)
	}
	if cl.Metadata().Topics["orders"] == nil {
		t.Fatal("no metadata after re-dial")
	}
}

func TestNewFailsClearlyWithoutBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	defer cancel()
	_, err := New(ctx, []string{"127.0.0.1:1"}, &Dialer{DialTimeout: 2e8})
	if err == nil || !IsRetriable(err) {
		t.Fatalf("got %v", err)
	}
}

// Negative or missing partitions are errors, never panics, and unknown
// topics cost one metadata request per round, not one per partition.
func TestBadPartitionsAndUnknownTopics(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	ctx := context.Background()
	cl, err := New(ctx, c.ListenAddrs(), &Dialer{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.backoff = Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond}
	res, err := cl.ListOffsets(ctx, ReadUncommitted, map[TopicPartition]int64{{"t", -1}: Earliest, {"t", 7}: Earliest})
	if err != nil {
		t.Fatal(err)
	}
	for tp, r := range res {
		if !errors.Is(r.Err, protocol.ErrUnknownTopicOrPartition) {
			t.Fatalf("%v: %v", tp, r.Err)
		}
	}

	var metadataRequests atomic.Int32
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		metadataRequests.Add(1)
		return nil, nil, false
	})
	ask := map[TopicPartition]int64{}
	for p := int32(0); p < 50; p++ {
		ask[TopicPartition{"missing", p}] = Latest
	}
	if _, err := cl.ListOffsets(ctx, ReadUncommitted, ask); err != nil {
		t.Fatal(err)
	}
	if n := metadataRequests.Load(); n > 10 {
		t.Fatalf("%d metadata requests for one missing topic", n)
	}

	f := NewFetcher(cl, FetchConfig{})
	defer f.Close()
	f.Assign(TopicPartition{"t", -1}, 0)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fe, err := f.Poll(pctx)
	if err != nil || len(fe.Partitions) != 1 || fe.Partitions[0].Err == nil {
		t.Fatalf("negative partition: %v %+v", err, fe)
	}
}
