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
	faultRounds   = 16
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
func onFetch(k *kfake.Cluster, fn func(n int, req *kmsg.FetchRequest) (kmsg.Response, error, bool)) (stop func()) {
	var n atomic.Int32
	var stopped atomic.Bool
	k.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		if stopped.Load() {
			return nil, nil, false
		}
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
	return func() { stopped.Store(true) }
}

// A broker fault matrix for backup: every fault is injected during a
// snapshot of 3 partitions × 640 records (≈1.3 MiB each), and the backup
// must come out exact — every record once, no gap, verify --deep clean,
// equal record by record to what franz-go reads from the broker.
func TestBackupSurvivesBrokerFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inject arms the fault on c; fired reports how often it struck.
		inject func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter, disarm func(func())) (fired func() int)
		dialer *client.Dialer
		// minThrottled is the least the backup must report paused for
		// throttles.
		minThrottled time.Duration
	}{{
		// The broker closes the connection on receiving a fetch, before
		// answering it.
		name: "connection dropped mid-request",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			var hits atomic.Int32
			disarm(onFetch(c.Kfake(), func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n == 1 || n == 3 || n == 5 {
					hits.Add(1)
					return nil, fmt.Errorf("dropped"), true
				}
				return nil, nil, false
			}))
			return func() int { return int(hits.Load()) }
		},
	}, {
		// Half of a fetch response reaches the client, then the
		// connection closes.
		name: "connection cut mid-response",
		inject: func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter, disarm func(func())) func() int {
			var once sync.Once
			disarm(onFetch(c.Kfake(), func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 {
					once.Do(func() { ct.Cut(int16(kmsg.Fetch), 3) })
				}
				return nil, nil, false
			}))
			disarm(ct.Stop)
			return ct.Cuts
		},
	}, {
		name: "NOT_LEADER_OR_FOLLOWER",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			h := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "t", Err: kerr.NotLeaderForPartition, Count: 4})
			disarm(h.Remove)
			return h.Hits
		},
	}, {
		// Every partition's leader moves (to another broker, epochs
		// bumped) once the run is under way.
		name: "leaders move",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			var moved atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			disarm(onFetch(k, func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n == 1 && moved.CompareAndSwap(0, 1) {
					wg.Add(1)
					go func() { defer wg.Done(); k.ShufflePartitionLeaders() }()
				}
				return nil, nil, false
			}))
			return func() int { return int(moved.Load()) }
		},
	}, {
		// Three fetches answered empty with a throttle of 200 ms.
		name:         "throttled",
		minThrottled: 3 * 150 * time.Millisecond,
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			var hits atomic.Int32
			disarm(onFetch(c.Kfake(), func(n int, r *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 && hits.Add(1) <= 3 {
					resp := r.ResponseKind().(*kmsg.FetchResponse)
					resp.ThrottleMillis = 200
					return resp, nil, true
				}
				return nil, nil, false
			}))
			return func() int { return int(min(hits.Load(), 3)) }
		},
	}, {
		// A fetch the broker sits on for 3 s, past the client's request
		// timeout of 1 s (plus the fetch's max wait).
		name:   "request timeout",
		dialer: &client.Dialer{RequestTimeout: time.Second},
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			var hits atomic.Int32
			k := c.Kfake()
			disarm(onFetch(k, func(n int, r *kmsg.FetchRequest) (kmsg.Response, error, bool) {
				if n >= 1 && hits.CompareAndSwap(0, 1) {
					k.SleepControl(func() { time.Sleep(3 * time.Second) })
				}
				return nil, nil, false
			}))
			return func() int { return int(hits.Load()) }
		},
	}, {
		// The leader of t/0 goes away and comes back on its port 100 ms
		// later (kfake keeps the data in memory).
		name: "broker restart",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter, disarm func(func())) func() int {
			var hits atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			id := k.LeaderFor("t", 0)
			port := portOf(t, c, id)
			disarm(onFetch(k, func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
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
			}))
			// Struck once the broker is back: the target is read back
			// whole only then.
			return func() int { wg.Wait(); return int(hits.Load()) }
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
			// The faults are taken off once the backup is done: franz-go
			// must read the broker undisturbed to judge it.
			var disarms []func()
			fired := tc.inject(t, c, ct, func(f func()) { disarms = append(disarms, f) })
			start := time.Now()
			m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
			took := time.Since(start)
			for _, f := range disarms {
				f()
			}
			if err != nil {
				t.Fatalf("backup failed: %v", err)
			}
			if fired() == 0 {
				t.Fatal("the fault never struck")
			}
			if stats.Throttled < tc.minThrottled {
				t.Errorf("the backup paused %v for throttles, want at least %v", stats.Throttled, tc.minThrottled)
			}
			lost, dup := checkExact(t, c, st, r, m)
			t.Logf("FIGURES fault=%q struck=%d records=%d lost=%d duplicated=%d took=%v throttled=%v", tc.name, fired(), stats.Records, lost, dup, took.Round(time.Millisecond), stats.Throttled.Round(time.Millisecond))
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

// Retention advancing during a backup: once the run has taken the first
// fetch of t/0, DeleteRecords moves its log start past where the backup
// has it, so the next fetch is OFFSET_OUT_OF_RANGE. The backup must not
// claim what it no longer can have: it continues from the new log start
// and records the offsets in between as a retention gap, the manifest's
// log start is the new one, and every record it does store is the
// source's, once.
func TestBackupRetentionAdvancesDuringRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(faultParts, "t"))
	fillFaultSource(t, c)
	k := c.Kfake()
	admin := c.Client(t)
	var from, to atomic.Int64 // the deleted range [from, to) the broker was asked for
	k.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				if rp.Partition != 0 || rp.FetchOffset == 0 || !from.CompareAndSwap(0, rp.FetchOffset) {
					continue
				}
				y := rp.FetchOffset
				x := min(y+200, (y+faultRounds*faultPerRound)/2+1)
				to.Store(x)
				done := make(chan error, 1)
				go func() { done <- deleteRecords(admin, "t", 0, x) }()
				var err error
				k.SleepControl(func() { err = <-done })
				if err != nil {
					t.Errorf("delete records below %d: %v", x, err)
				}
			}
		}
		return nil, nil, false // the fetch goes on, at an offset now below the log start
	})
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	y, x := from.Load(), to.Load()
	if y == 0 {
		t.Fatal("the log start never moved during the run")
	}
	p := m.Topic("t").Partition(0)
	if fmt.Sprint(p.Gaps) != fmt.Sprintf("[{%d %d retention}]", y, x) || p.LogStart != x || p.From != 0 || p.To != faultRounds*faultPerRound || stats.Gaps != 1 {
		t.Fatalf("t/0: from %d to %d, log start %d, gaps %v (stats %d): want the gap [%d, %d) and log start %d", p.From, p.To, p.LogStart, p.Gaps, stats.Gaps, y, x, x)
	}
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	// What the broker still has, record by record.
	repotest.CheckAgainstBroker(t, c, st, m)
	// And below the gap, what was produced: offsets [0, y) each once, in
	// order. Round r's record j is at offset r*faultPerRound+j.
	all := *p
	all.LogStart = 0
	recs, err := crosscheck.RepositoryRecords(ctx, st, "t", &all)
	if err != nil {
		t.Fatal(err)
	}
	lost, dup, gapped := 0, 0, 0
	seen := map[int64]int{}
	for _, rec := range recs {
		want := fmt.Sprintf("p0-r%d-%d", rec.Offset/faultPerRound, rec.Offset%faultPerRound)
		if string(rec.Key) != want {
			t.Fatalf("offset %d holds %q, want %q", rec.Offset, rec.Key, want)
		}
		seen[rec.Offset]++
	}
	for off := int64(0); off < faultRounds*faultPerRound; off++ {
		switch n := seen[off]; {
		case off >= y && off < x:
			gapped++ // the head of the batch the log start fell in may be stored; it is true data
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	if lost != 0 || dup != 0 {
		t.Fatalf("t/0: %d records outside the gap lost, %d duplicated", lost, dup)
	}
	t.Logf("FIGURES fault=%q gap=[%d,%d) (%d offsets, deleted by DeleteRecords during the run) lost=%d duplicated=%d", "OFFSET_OUT_OF_RANGE (retention advanced)", y, x, x-y, lost, dup)
}

// deleteRecords deletes topic/partition's records below offset through
// franz-go.
func deleteRecords(cl *kgo.Client, topic string, partition int32, offset int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// A fault that does not pass (the principal lost its read access to one
// partition) fails the backup with an error naming the partition and the
// broker's error; no manifest is written, the repository holds only a
// checkpoint, and once the fault is gone the next run resumes from it to
// an exact backup.
func TestBackupPersistentFaultFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(faultParts, "t"))
	fillFaultSource(t, c)
	h := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "t", Partitions: []int32{1}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	_, _, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
	if err == nil {
		t.Fatal("the backup succeeded without t/1")
	}
	if !strings.Contains(err.Error(), "t/1") || !strings.Contains(strings.ToUpper(err.Error()), "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("error %q: want it to name t/1 and TOPIC_AUTHORIZATION_FAILED", err)
	}
	failure := err
	if ids, err := r.Backups(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("backups after the failure: %v, %v: want none", ids, err)
	}
	runs, err := r.Unfinished(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("unfinished runs: %+v, %v: want the failed one", runs, err)
	}
	h.Remove()
	m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	if !stats.Resumed || m.ID != runs[0].ID {
		t.Fatalf("the second run did not resume %s: %+v", runs[0].ID, stats)
	}
	checkExact(t, c, st, r, m)
	t.Logf("FIGURES fault=%q outcome=%q", "TOPIC_AUTHORIZATION_FAILED on t/1 (persistent)", failure)
}

// A single broker with its data on disk is stopped and started again on
// the same port while the backup runs: kfake reloads the log from its
// data directory, and the backup comes out exact.
func TestBackupSurvivesBrokerRestartWithPersistedData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	opts := []kfake.Opt{kfake.DataDir(dataDir), kfake.ClusterID("persisted")}
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(faultParts, "t"), kfaketest.KfakeOpts(opts...))
	fillFaultSource(t, c)
	addr := c.Addrs()[0]
	_, portStr, _ := strings.Cut(addr, ":")
	var port int
	fmt.Sscan(portStr, &port)

	var restarted atomic.Pointer[kfake.Cluster]
	restartErr := make(chan error, 1)
	k := c.Kfake()
	var once sync.Once
	onFetch(k, func(n int, _ *kmsg.FetchRequest) (kmsg.Response, error, bool) {
		if n >= 1 {
			once.Do(func() {
				go func() {
					k.Close() // persists the log
					time.Sleep(100 * time.Millisecond)
					nc, err := kfake.NewCluster(append(opts, kfake.NumBrokers(1), kfake.Ports(port))...)
					if err == nil {
						restarted.Store(nc)
					}
					restartErr <- err
				}()
			})
		}
		return nil, nil, false
	})
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	m, stats, err := Run(ctx, cl, r, Options{Memory: 16 << 20, SkipGroups: true})
	var rerr error
	select {
	case rerr = <-restartErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker was never restarted")
	}
	if nc := restarted.Load(); nc != nil {
		defer nc.Close()
	}
	if rerr != nil {
		t.Fatalf("restart the broker: %v", rerr)
	}
	if err != nil {
		t.Fatalf("backup across the restart: %v", err)
	}
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	res, err := crosscheck.Backup(ctx, crosscheck.NewCluster(kc), st, m)
	if err != nil {
		t.Fatal(err)
	}
	want := faultParts * faultRounds * faultPerRound
	for _, p := range m.Topic("t").Partitions {
		if p.From != 0 || p.To != faultRounds*faultPerRound || len(p.Gaps) != 0 {
			t.Fatalf("t/%d: %+v", p.Partition, p)
		}
	}
	if res.Records != int64(want) {
		t.Fatalf("%d records checked against the restarted broker, want %d", res.Records, want)
	}
	t.Logf("FIGURES fault=%q records=%d lost=0 duplicated=0", "broker restart, data reloaded from disk", stats.Records)
}
