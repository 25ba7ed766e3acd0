package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The producer side of restore under broker faults. The source holds
// faultParts partitions of faultRounds batches; each batch is restored as
// one, five in flight per partition, so every fault lands among requests
// in flight.
const (
	faultParts    = 3
	faultRounds   = 30
	faultPerRound = 20
)

// faultSource is a backup of the fault tests' data, shared by the cases:
// each restores it into a cluster of its own.
type faultSource struct {
	src  *kfaketest.Cluster
	want []*kgo.Record // the source's records, read by franz-go
	r    *repo.Repository
	m    *repo.Manifest
}

func newFaultSource(t *testing.T) *faultSource {
	t.Helper()
	ctx := context.Background()
	fs := fillFaultSource(t)
	st, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if fs.r, err = repo.Open(ctx, st, true); err != nil {
		t.Fatal(err)
	}
	sc, err := client.New(ctx, fs.src.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if fs.m, _, err = backup.Run(ctx, sc, fs.r, backup.Options{SkipGroups: true}); err != nil {
		t.Fatal(err)
	}
	return fs
}

// fillFaultSource starts the source cluster and writes the fault tests'
// data into it; r and m are left for the caller.
func fillFaultSource(t *testing.T) *faultSource {
	t.Helper()
	fs := &faultSource{src: kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(faultParts, "t"))}
	for p := range faultParts {
		for r := range faultRounds {
			fs.src.Produce(t, "t", int32(p), faultBatch(p, r)...)
		}
	}
	fs.want = fs.src.ConsumeAll(t, "t")
	return fs
}

// faultBatch is round r's records of partition p: unique keys, so that a
// duplicate cannot hide.
func faultBatch(p, r int) []*kgo.Record {
	rs := make([]*kgo.Record, faultPerRound)
	for i := range rs {
		key := fmt.Sprintf("p%d-r%d-%d", p, r, i)
		rs[i] = &kgo.Record{Key: []byte(key), Value: []byte(strings.Repeat(key, 20)), Headers: []kgo.RecordHeader{{Key: "r", Value: []byte(fmt.Sprint(r))}}}
	}
	return rs
}

// compare counts the source's records missing from got and those got
// holds more than once, and checks that got is the source record for
// record (partition, offset, key, value, headers, timestamp).
func (fs *faultSource) compare(t *testing.T, got []*kgo.Record) (lost, dup int) {
	t.Helper()
	n := map[string]int{}
	for _, r := range got {
		n[fmt.Sprintf("%d/%s", r.Partition, r.Key)]++
	}
	for _, w := range fs.want {
		switch c := n[fmt.Sprintf("%d/%s", w.Partition, w.Key)]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
	}
	if lost == 0 && dup == 0 {
		if len(got) != len(fs.want) {
			t.Errorf("the target holds %d records, the source %d", len(got), len(fs.want))
		}
		for i, w := range fs.want {
			if i >= len(got) {
				break
			}
			g := got[i]
			if g.Partition != w.Partition || g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
				!g.Timestamp.Equal(w.Timestamp) || fmt.Sprint(g.Headers) != fmt.Sprint(w.Headers) {
				t.Errorf("target record %d: %d@%d %q, want %d@%d %q (or other values, headers, timestamp)", i, g.Partition, g.Offset, g.Key, w.Partition, w.Offset, w.Key)
				break
			}
		}
	}
	if lost != 0 || dup != 0 {
		t.Errorf("%d records lost, %d duplicated", lost, dup)
	}
	return lost, dup
}

// onProduce calls fn for every Produce request the cluster receives,
// with how many came before it (from 1); fn's answer is the control's.
func onProduce(k *kfake.Cluster, fn func(n int, req *kmsg.ProduceRequest) (kmsg.Response, error, bool)) {
	var n atomic.Int32
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		return fn(int(n.Add(1)), req.(*kmsg.ProduceRequest))
	})
}

type restoreFault struct {
	name string
	// inject arms the fault on the target; fired reports how often it
	// struck.
	inject func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter) (fired func() int)
	dialer *client.Dialer
	long   bool // only with KTAPE_LONG=1
	// check, when set, checks the restore's figures.
	check func(t *testing.T, st Stats)
}

// A broker fault matrix for the producer side of restore: each fault is
// injected into the target while the restore sends, and the target must
// end up holding the source's records exactly — none lost, none
// duplicated (idempotence dedups a batch the broker appended but whose
// answer was lost), same offsets, read back by franz-go.
func TestRestoreSurvivesBrokerFaults(t *testing.T) {
	fs := newFaultSource(t)
	for _, tc := range []restoreFault{{
		name: "connection dropped mid-request",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			onProduce(c.Kfake(), func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n%7 == 3 && hits.Load() < 4 {
					hits.Add(1)
					return nil, errors.New("dropped"), true
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}, {
		// The broker appends the batch, then the connection breaks
		// half-way through its answer: the producer must retry, and
		// the broker must recognise the retry as a duplicate.
		name: "connection cut mid-response (after the append)",
		inject: func(t *testing.T, c *kfaketest.Cluster, ct *kfaketest.Cutter) func() int {
			var once sync.Once
			onProduce(c.Kfake(), func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n >= 3 {
					once.Do(func() { ct.Cut(int16(kmsg.Produce), 4) })
				}
				return nil, nil, false
			})
			return ct.Cuts
		},
	}, {
		// REQUEST_TIMED_OUT from the broker, which kfake, like Kafka,
		// answers after appending: the retry is a duplicate to drop.
		name: "REQUEST_TIMED_OUT (after the append)",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			return c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.RequestTimedOut, Count: 4}).Hits
		},
	}, {
		name: "NOT_LEADER_OR_FOLLOWER",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			return c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.NotLeaderForPartition, Count: 4}).Hits
		},
	}, {
		name: "leaders move",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var moved atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n == 5 && moved.CompareAndSwap(0, 1) {
					wg.Add(1)
					go func() { defer wg.Done(); k.ShufflePartitionLeaders() }()
				}
				return nil, nil, false
			})
			return func() int { return int(moved.Load()) }
		},
	}, {
		// A slow broker: three produce requests held 300 ms each
		// before they are handled (what a broker throttling a client
		// does to its connection).
		name: "slow broker (held 300 ms)",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			k := c.Kfake()
			onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n%5 == 2 && hits.Load() < 3 {
					hits.Add(1)
					k.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}, {
		// A broker over its produce quota (KIP-219): three requests
		// refused (NOT_ENOUGH_REPLICAS, nothing appended) with a
		// throttle of 200 ms, which the producer waits out.
		name: "throttled",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			onProduce(c.Kfake(), func(n int, req *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n%5 != 2 || hits.Add(1) > 3 {
					return nil, nil, false
				}
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				resp.ThrottleMillis = 200
				for _, rt := range req.Topics {
					t := kmsg.NewProduceResponseTopic()
					t.Topic, t.TopicID = rt.Topic, rt.TopicID
					for _, rp := range rt.Partitions {
						p := kmsg.NewProduceResponseTopicPartition()
						p.Partition, p.ErrorCode = rp.Partition, kerr.NotEnoughReplicas.Code
						t.Partitions = append(t.Partitions, p)
					}
					resp.Topics = append(resp.Topics, t)
				}
				return resp, nil, true
			})
			return func() int { return int(min(hits.Load(), 3)) }
		},
		check: func(t *testing.T, st Stats) {
			if st.Throttled < 3*150*time.Millisecond {
				t.Errorf("the producer paused %v for three throttles of 200 ms", st.Throttled)
			}
		},
	}, {
		// A broker that says nothing for longer than the request may
		// take (the producer's 30 s produce timeout plus the client's
		// 1 s): the connection is given up, the batch sent again on a
		// new one.
		name:   "request timeout (broker silent 33 s)",
		long:   true,
		dialer: &client.Dialer{RequestTimeout: time.Second},
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			k := c.Kfake()
			onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n == 4 && hits.CompareAndSwap(0, 1) {
					k.SleepControl(func() { time.Sleep(33 * time.Second) })
				}
				return nil, nil, false
			})
			return func() int { return int(hits.Load()) }
		},
	}, {
		// The leader of t/0 goes away and comes back on its port.
		name: "broker restart",
		inject: func(t *testing.T, c *kfaketest.Cluster, _ *kfaketest.Cutter) func() int {
			var hits atomic.Int32
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			k := c.Kfake()
			onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n == 4 && hits.CompareAndSwap(0, 1) {
					id := k.LeaderFor("t", 0)
					port := brokerPort(k, id)
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
			// Struck once the broker is back: the target is read back
			// whole only then.
			return func() int { wg.Wait(); return int(hits.Load()) }
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && os.Getenv("KTAPE_LONG") == "" {
				t.Skip("takes over 30 s: set KTAPE_LONG=1")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ct := kfaketest.NewCutter()
			dst := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.CutResponses(ct))
			dc, err := client.New(ctx, dst.Addrs(), tc.dialer)
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Close()
			fired := tc.inject(t, dst, ct)
			start := time.Now()
			st, err := Run(ctx, dc, fs.r, fs.m, Options{ReplicationFactor: 1})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("restore failed: %v", err)
			}
			if fired() == 0 {
				t.Fatal("the fault never struck")
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			lost, dup := fs.compare(t, dst.ConsumeAll(t, "t"))
			t.Logf("FIGURES fault=%q struck=%d batches=%d lost=%d duplicated=%d took=%v throttled=%v", tc.name, fired(), st.Batches, lost, dup, took.Round(time.Millisecond), st.Throttled.Round(time.Millisecond))
		})
	}
}

// brokerPort returns the port broker id listens on; called from a
// control function, it must not call into the cluster, so it reads the
// listen addresses, in node order (kfake numbers nodes from 0 in the
// order of its listeners until nodes are added or removed).
func brokerPort(k *kfake.Cluster, id int32) int {
	addrs := k.ListenAddrs()
	if int(id) >= len(addrs) {
		return 0
	}
	var port int
	_, p, _ := strings.Cut(addrs[id], ":")
	fmt.Sscan(p, &port)
	return port
}

// A fault that does not pass (the principal may not write one
// partition) fails the restore with an error naming the partition and
// the broker's error; the restore log keeps what was acknowledged, and
// once the fault is gone the same restore run again resumes and ends
// with the target holding the source exactly.
func TestRestorePersistentFaultFailsClearly(t *testing.T) {
	fs := newFaultSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dst := kfaketest.Start(t, kfaketest.Brokers(3))
	dc, err := client.New(ctx, dst.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	k := dst.Kfake()
	// Some batches of every partition go through first.
	var h atomic.Pointer[kfake.FaultHandle]
	onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
		if n == 6 && h.Load() == nil {
			h.Store(k.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{1}, Err: kerr.TopicAuthorizationFailed, Count: -1}))
		}
		return nil, nil, false
	})
	_, err = Run(ctx, dc, fs.r, fs.m, Options{ReplicationFactor: 1})
	if err == nil {
		t.Fatal("the restore succeeded while t/1 refused every write")
	}
	if !strings.Contains(err.Error(), "t/1") || !strings.Contains(err.Error(), "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("error %q: want it to name t/1 and TOPIC_AUTHORIZATION_FAILED", err)
	}
	failure := err
	if h.Load() == nil {
		t.Fatal("the fault was never installed")
	}
	h.Load().Remove()
	st, err := Run(ctx, dc, fs.r, fs.m, Options{ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed {
		t.Fatalf("the second run did not resume: %+v", st)
	}
	lost, dup := fs.compare(t, dst.ConsumeAll(t, "t"))
	t.Logf("FIGURES fault=%q outcome=%q; rerun resumed (already restored %d batches) lost=%d duplicated=%d", "TOPIC_AUTHORIZATION_FAILED on produce to t/1 (persistent)", failure, st.AlreadyRestored, lost, dup)
}

// The target's only broker, with its data on disk, is stopped and started
// again on the same port while the restore sends. Whatever the broker
// had appended is reloaded; the producer's batches in flight are sent
// again, and the target must still hold every record exactly once.
func TestRestoreSurvivesBrokerRestartWithPersistedData(t *testing.T) {
	fs := newFaultSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := []kfake.Opt{kfake.DataDir(t.TempDir()), kfake.ClusterID("persisted-target")}
	dst := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.KfakeOpts(opts...))
	addr := dst.Addrs()[0]
	port := brokerPort(dst.Kfake(), 0)
	dc, err := client.New(ctx, dst.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	k := dst.Kfake()
	var restarted atomic.Pointer[kfake.Cluster]
	restartErr := make(chan error, 1)
	var once sync.Once
	onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
		if n >= 8 {
			// From the 8th request on, the old broker takes nothing
			// (the connection is closed), and it shuts down: kfake
			// saves its idempotence state when it closes, so a batch
			// appended while it closed would be reloaded without it and
			// taken again on a retry, a duplicate a real broker, which
			// rebuilds that state from its log, would not make.
			once.Do(func() {
				go func() {
					k.Close()
					time.Sleep(100 * time.Millisecond)
					nc, err := kfake.NewCluster(append(opts, kfake.NumBrokers(1), kfake.Ports(port))...)
					if err == nil {
						restarted.Store(nc)
					}
					restartErr <- err
				}()
			})
			return nil, errors.New("restarting"), true
		}
		return nil, nil, false
	})
	st, err := Run(ctx, dc, fs.r, fs.m, Options{ReplicationFactor: 1})
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
		t.Fatalf("restore across the restart: %v", err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	got := consumeAllWith(t, kc, "t")
	lost, dup := fs.compare(t, got)
	t.Logf("FIGURES fault=%q batches=%d lost=%d duplicated=%d", "target broker restart, data reloaded from disk", st.Batches, lost, dup)
}

// consumeAllWith is kfaketest's ConsumeAll through a given franz-go
// client: every partition of topic, log start to end, decoded by kgo.
func consumeAllWith(t *testing.T, kc *kgo.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := crosscheck.NewCluster(kc)
	ct, err := cc.Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets, err := cc.Offsets(ctx, ct, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	for _, p := range ct.Partitions() {
		rs, err := cc.Records(ctx, ct, p, offsets[p].LogStart, offsets[p].End, crosscheck.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	return out
}
