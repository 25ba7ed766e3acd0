package backup

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker faults during a whole backup run. The source holds faultParts
// partitions of faultRounds batches each, large enough that each partition
// takes several fetches (1 MiB per partition per fetch), so that a fault
// lands in the middle of the run with data already taken.
const (
	faultParts    = 3
	faultRounds   = 24
	faultPerRound = 40
	faultValue    = 2 << 10
)

// faultRecords are round r's records of partition p: unique keys, so that
// a duplicate cannot hide.
func faultRecords(p, r int) []*kgo.Record {
	out := make([]*kgo.Record, faultPerRound)
	for i := range out {
		key := fmt.Sprintf("p%d-r%d-%d", p, r, i)
		out[i] = &kgo.Record{Key: []byte(key), Value: []byte(strings.Repeat(key+" ", faultValue/len(key)))}
	}
	return out
}

// fillFaultSource produces the fault tests' data into topic t.
func fillFaultSource(t *testing.T, c *kfaketest.Cluster) {
	t.Helper()
	for p := range faultParts {
		for r := range faultRounds {
			c.Produce(t, "t", int32(p), faultRecords(p, r)...)
		}
	}
}

// checkExact asserts that m holds every record of topic t exactly once:
// each partition from 0 to its end with no gap, its segments verified
// (--deep), and its records, decoded by franz-go from the repository,
// equal to what franz-go reads from the broker, key by key.
func checkExact(t *testing.T, c *kfaketest.Cluster, st *storage.Store, r *repo.Repository, m *repo.Manifest) (lost, dup int) {
	t.Helper()
	ctx := context.Background()
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	tm := m.Topic("t")
	if tm == nil || len(tm.Partitions) != faultParts {
		t.Fatalf("manifest topics %+v", m.Topics)
	}
	want := faultRounds * faultPerRound
	for i := range tm.Partitions {
		p := &tm.Partitions[i]
		recs, err := crosscheck.RepositoryRecords(ctx, st, "t", p)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, rec := range recs {
			seen[string(rec.Key)]++
		}
		for r := range faultRounds {
			for j := range faultPerRound {
				switch n := seen[fmt.Sprintf("p%d-r%d-%d", p.Partition, r, j)]; {
				case n == 0:
					lost++
				case n > 1:
					dup += n - 1
				}
			}
		}
		if p.From != 0 || p.To != int64(want) || len(p.Gaps) != 0 || len(recs) != want {
			t.Errorf("t/%d: from %d to %d, gaps %v, %d records: want 0 to %d, no gap, %d records", p.Partition, p.From, p.To, p.Gaps, len(recs), want, want)
		}
	}
	if lost != 0 || dup != 0 {
		t.Errorf("%d records lost, %d duplicated", lost, dup)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
	return lost, dup
}

// onFetch calls fn for every Fetch request the cluster receives, with
// the number of Fetch requests so far (from 1) that asked for data past
// offset 0 of some partition (so fn can wait until the run is under way);
// fn's answer is the control's.
func onFetch(k *kfake.Cluster, fn func(n int, req *kmsg.FetchRequest) (kmsg.Response, error, bool)) {
	var n atomic.Int32
	k.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		r := req.(*kmsg.FetchRequest)
		midway := false
		for _, rt := range r.Topics {
			for _, rp := range rt.Partitions {
				midway = midway || rp.FetchOffset > 0
			}
		}
		if !midway {
			return fn(int(n.Load()), r)
		}
		return fn(int(n.Add(1)), r)
	})
}

// A broker fault matrix for backup: every fault is injected during a
// snapshot of 3 partitions × 960 records (≈2 MiB each), and the backup
// must come out exact — every record once, no gap, verify --deep clean,
// equal record by record to what franz-go reads from the broker.
func TestBackupSurvivesBrokerFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inject arms the fault on c; fired reports how often it struck.
		inject func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter) (fired func() int)
		dialer *client.Dialer
	}{{
		// The broker closes the connection on receiving a fetch, before
		// answering it.
		name: "connection dropped mid-request",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			onFetch(c.Kfake(), func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n == 1 || n == 3 || n == 5 {
					hits.Add(1)
					return nil, fmt.Errorf("dropped"), true
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}, {
		// Half of a fetch response reaches the client, then the
		// connection closes.
		name: "connection cut mid-response",
		inject: func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter) func() int {
			var once sync.Once
			onFetch(c.Kfake(), func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 {
					once.Do(func() { ct.Cut(int16(kmsg.Fetch), 3) })
				}
				return nil, nil, false
			})
			return ct.Cuts
		},
	}, {
		name: "NOT_LEADER_OR_FOLLOWER",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			h := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "t", Err: kerr.NotLeaderForPartition, Count: 4})
			return h.Hits
		},
	}, {
		// Every partition's leader moves (to another broker, epochs
		// bumped) once the run is under way.
		name: "leaders move",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var moved atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			onFetch(k, func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n == 1 && moved.CompareAndSwap(0, 1) {
					wg.Add(1)
					go func() { defer wg.Done(); k.ShufflePartitionLeaders() }()
				}
				return nil, nil, false
			})
			return func() int { return int(moved.Load()) }
		},
	}, {
		// Three fetches answered empty with a throttle of 200 ms.
		name: "throttled",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			onFetch(c.Kfake(), func(n int, r *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 && hits.Add(1) <= 3 {
					resp := r.ResponseKind().(*kmsg.FetchResponse)
					resp.ThrottleMillis = 200
					return resp, nil, true
				}
				return nil, nil, false
			})
			return func() int { return int(min(hits.Load(), 3)) }
		},
	}, {
		// A fetch the broker sits on for 3 s, past the client's request
		// timeout of 1 s (plus the fetch's max wait).
		name:   "request timeout",
		dialer: &client.Dialer{RequestTimeout: time.Second},
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			k := c.Kfake()
			onFetch(k, func(n int, r *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 && hits.CompareAndSwap(0, 1) {
					k.SleepControl(func() { time.Sleep(3 * time.Second) })
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}, {
		// The leader of t/0 goes away and comes back on its port 100 ms
		// later (kfake keeps the data in memory).
		name: "broker restart",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			id := k.LeaderFor("t", 0)
			port := portOf(t, c, id)
			onFetch(k, func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 && hits.CompareAndSwap(0, 1) {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := k.RemoveNode(id); err != nil {
							t.Errorf("remove node %d: %v", id, err)
							return
						}
						time.Sleep(100 * time.Millisecond)
						if _, _, err := k.AddNode(id, port); err != nil {
							t.Errorf("add node %d back: %v", id, err)
						}
					}()
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ct := kfaketest.NewCutter()
			c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(faultParts, "t"), kfaketest.CutResponses(ct))
			fillFaultSource(t, c)
			cl, err := client.New(ctx, c.Addrs(), tc.dialer)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			st, r := openRepo(t, t.TempDir())
			fired := tc.inject(t, c, ct)
			start := time.Now()
			m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("backup failed: %v", err)
			}
			if fired() == 0 {
				t.Fatal("the fault never struck")
			}
			lost, dup := checkExact(t, c, st, r, m)
			t.Logf("FIGURES fault=%q struck=%d records=%d lost=%d duplicated=%d took=%v", tc.name, fired(), stats.Records, lost, dup, took.Round(time.Millisecond))
		})
	}
}

// portOf returns broker id's port.
func portOf(t *testing.T, c *kfaketest.Cluster, id int32) int {
	t.Helper()
	cl := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if b.NodeID == id {
			return int(b.Port)
		}
	}
	t.Fatalf("broker %d not in metadata", id)
	return 0
}
