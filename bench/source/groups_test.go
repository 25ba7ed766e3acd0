package source

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ktape/ktape/client"
)

// serveWithGroups serves a small topic whose group requests go to
// groups ("" for none), until the test ends.
func serveWithGroups(t *testing.T, groups string) string {
	t.Helper()
	top, err := Generate(TopicConfig{Name: "t", Partitions: 2, Bytes: 64 << 10, BatchBytes: 16 << 10, PoolBytes: 64 << 10, ValueBytes: DefaultValueBytes, KeyBytes: DefaultKeyBytes})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	s, err := NewServer(top, ServerConfig{Groups: groups, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		s.Close()
		if groups != "" && logs.Len() > 0 {
			t.Errorf("server log:\n%s", logs.String())
		}
	})
	return ln.Addr().String()
}

// Two ktape group members coordinate through the source, which forwards
// their group requests to kfake: the first is assigned every item, the
// second's join rebalances the group, and both then hold half of them in
// one generation, with the leader's shared bytes. Without a coordinator
// to forward to, the source refuses to be one.
func TestGroupForwarding(t *testing.T) {
	k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	addr := serveWithGroups(t, k.ListenAddrs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	items := []client.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "t", Partition: 2}, {Topic: "t", Partition: 3}}
	member := func() *client.GroupMember {
		c, err := client.New(ctx, []string{addr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		m, err := c.NewGroupMember(client.GroupConfig{Group: "g", SessionTimeout: time.Second, HeartbeatInterval: 50 * time.Millisecond,
			Plan: func(context.Context) ([]client.TopicPartition, []byte, error) { return items, []byte("run-1"), nil }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	m1, m2 := member(), member()
	a, err := m1.Join(ctx)
	if err != nil {
		t.Fatalf("first join: %v", err)
	}
	if len(a.Items) != 4 || a.Members != 1 || string(a.Shared) != "run-1" {
		t.Fatalf("first member alone: %+v", a)
	}
	var (
		wg   sync.WaitGroup
		got  [2]client.Assignment
		errs [2]error
	)
	wg.Add(2)
	go func() { defer wg.Done(); got[1], errs[1] = m2.Join(ctx) }()
	go func() {
		defer wg.Done()
		select {
		case <-m1.Revoked():
			got[0], errs[0] = m1.Join(ctx)
		case <-ctx.Done():
			errs[0] = ctx.Err()
		}
	}()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d after the second joined: %v", i+1, err)
		}
	}
	union := append(slices.Clone(got[0].Items), got[1].Items...)
	slices.SortFunc(union, func(a, b client.TopicPartition) int { return int(a.Partition - b.Partition) })
	if got[0].Generation != got[1].Generation || got[0].Generation <= a.Generation || len(got[0].Items) != 2 || !slices.Equal(union, items) ||
		string(got[1].Shared) != "run-1" || got[0].Members != 2 {
		t.Fatalf("after the rebalance: %+v and %+v", got[0], got[1])
	}
	if err := m2.Leave(ctx); err != nil {
		t.Fatalf("leave through the source: %v", err)
	}

	plain := serveWithGroups(t, "")
	c, err := client.New(ctx, []string{plain}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.NewGroupMember(client.GroupConfig{Group: "g", Plan: func(context.Context) ([]client.TopicPartition, []byte, error) { return items, nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	jctx, jcancel := context.WithTimeout(ctx, 5*time.Second)
	defer jcancel()
	if _, err := m.Join(jctx); err == nil {
		t.Fatal("a source with no coordinator to forward to took a JoinGroup")
	} else {
		t.Logf("without -groups: %v", err)
	}
}
