package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newClient is a client of c of its own: a process of a restore in parts.
func newClient(t *testing.T, c *kfaketest.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// sameTopic checks that topic holds the same records in clusters a and
// b, read by franz-go: partition, offset, key, value, headers, timestamp.
func sameTopic(t *testing.T, a, b *kfaketest.Cluster, topic string) int {
	t.Helper()
	ra, rb := a.ConsumeAll(t, topic, kgo.ReadUncommitted()), b.ConsumeAll(t, topic, kgo.ReadUncommitted())
	if len(ra) != len(rb) || len(ra) == 0 {
		t.Fatalf("%s: %d records in one cluster, %d in the other", topic, len(ra), len(rb))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.Partition != y.Partition || x.Offset != y.Offset || line(x) != line(y) {
			t.Fatalf("%s record %d: %d@%d %s, the other %d@%d %s", topic, i, x.Partition, x.Offset, line(x), y.Partition, y.Offset, line(y))
		}
	}
	return len(ra)
}

// deal deals ps out to n runs, round robin.
func deal(ps []client.TopicPartition, n int) [][]client.TopicPartition {
	out := make([][]client.TopicPartition, n)
	for i, p := range ps {
		out[i%n] = append(out[i%n], p)
	}
	return out
}

// runParts runs RunPart of each set at once, each with a client of its
// own, and fails the test on an error.
func runParts(t *testing.T, dst *kfaketest.Cluster, r *repo.Repository, m *repo.Manifest, id string, sets [][]client.TopicPartition, opts Options) []Stats {
	t.Helper()
	stats := make([]Stats, len(sets))
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, set := range sets {
		c := newClient(t, dst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = RunPart(context.Background(), c, r, m, id, set, opts)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return stats
}

// A restore run in three parts at once, each by a client of its own,
// then finished, leaves the target exactly as one Run into another
// cluster does: every record at the same offset with the same key,
// value, headers and timestamp (a merged partition and transactions
// among them), and the same consumer group offsets. Finish before any
// part ran says which partitions are missing; twice is fine.
func TestRestoreInParts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(5, "orders"), kfaketest.Topics(2, "pay"))
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression(), kgo.Lz4Compression()}
	for b := range 15 {
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codecs[b%3]}, "orders", int32(b%5), records(fmt.Sprint("o", b), 15)...)
		e.src.Produce(t, "pay", int32(b%2), records(fmt.Sprint("p", b), 7)...)
	}
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "orders", 1, records("committed", 5)...)
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 2, records("aborted", 5)...)
	e.src.Produce(t, "orders", 2, records("after", 4)...)
	for g, offs := range map[string]map[client.TopicPartition]int64{
		"g1": {{Topic: "orders", Partition: 0}: 20, {Topic: "orders", Partition: 2}: 47, {Topic: "pay", Partition: 1}: 9},
		"g2": {{Topic: "orders", Partition: 4}: 45, {Topic: "orders", Partition: 1}: 0},
	} {
		req := map[client.TopicPartition]client.GroupOffset{}
		for tp, o := range offs {
			req[tp] = client.GroupOffset{Offset: o, LeaderEpoch: -1}
		}
		if _, err := e.sc.CommitGroupOffsets(ctx, g, req); err != nil {
			t.Fatal(err)
		}
	}
	m := e.backup(t)
	// pay's two partitions merged into one: a job of two sources.
	opts := Options{Groups: true, PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("pay"), Partitions: map[int32]int32{0: 0, 1: 0}}}}

	ref := kfaketest.Start(t)
	if _, err := Run(ctx, newClient(t, ref), e.r, m, opts); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	p, err := Prepare(ctx, newClient(t, e.dst), e.r, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed || p.Complete || p.TopicsCreated != 2 || len(p.Partitions) != 6 {
		t.Fatalf("prepared %+v", p)
	}
	_, err = Finish(ctx, e.dc, e.r, m, p.ID, opts)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "6 of the 6") || !strings.Contains(err.Error(), "orders/3") {
		t.Fatalf("Finish before any part ran: %v", err)
	}
	stats := runParts(t, e.dst, e.r, m, p.ID, deal(p.Partitions, 3), opts)
	var batches int64
	for _, st := range stats {
		batches += st.Batches
		if st.Batches == 0 || st.Partitions != 2 {
			t.Fatalf("a part: %+v", st)
		}
	}
	st, err := Finish(ctx, e.dc, e.r, m, p.ID, opts)
	if err != nil || st.Complete || !slices.Equal(st.GroupsCommitted, []string{"g1", "g2"}) {
		t.Fatalf("Finish: %+v, %v", st, err)
	}
	took := time.Since(start)
	again, err := Finish(ctx, e.dc, e.r, m, p.ID, opts)
	if err != nil || !again.Complete {
		t.Fatalf("Finish again: %+v, %v", again, err)
	}
	n := sameTopic(t, ref, e.dst, "orders") + sameTopic(t, ref, e.dst, "pay")
	want, err := newClient(t, ref).FetchGroupOffsets(ctx, []string{"g1", "g2"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.dc.FetchGroupOffsets(ctx, []string{"g1", "g2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(want["g1"]) != 2 || len(want["g2"]) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("group offsets %v, one Run committed %v", got, want)
	}
	// The restore log: one done record, from the parts' records.
	done, err := e.r.RestoreDone(ctx, p.ID)
	if err != nil || done == nil || len(done.Partitions) != 6 {
		t.Fatalf("done record %+v, %v", done, err)
	}
	var sum int64
	for _, dp := range done.Partitions {
		sum += dp.Batches
	}
	if sum != batches {
		t.Fatalf("the done record counts %d batches, the parts sent %d", sum, batches)
	}
	// Run finds it done.
	if st, err := Run(ctx, e.dc, e.r, m, opts); err != nil || !st.Complete || st.ID != p.ID {
		t.Fatalf("Run after the parts: %+v, %v", st, err)
	}
	t.Logf("FIGURES parts=3 partitions=6 records=%d batches=%d prepare+parts+finish=%v", n, batches, took.Round(time.Millisecond))
}

// Finish says which partitions are not complete, and only those; a part
// run again skips what is complete; two Finish at once both succeed.
func TestFinishIncomplete(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(4, "t"))
	for b := range 8 {
		e.src.Produce(t, "t", int32(b%4), records(fmt.Sprint("b", b), 10)...)
	}
	m := e.backup(t)
	p, err := Prepare(ctx, e.dc, e.r, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	half := deal(p.Partitions, 2)
	runParts(t, e.dst, e.r, m, p.ID, half[:1], Options{})
	_, err = Finish(ctx, e.dc, e.r, m, p.ID, Options{})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Finish with half the partitions restored: %v", err)
	}
	for _, d := range half[0] {
		if strings.Contains(err.Error(), d.String()) {
			t.Fatalf("the error names %s, which is complete: %v", d, err)
		}
	}
	for _, d := range half[1] {
		if !strings.Contains(err.Error(), d.String()) {
			t.Fatalf("the error does not name %s, which is not complete: %v", d, err)
		}
	}
	// Run again, the first half is found complete and skipped.
	st := runParts(t, e.dst, e.r, m, p.ID, half[:1], Options{})[0]
	if st.AlreadyComplete != 2 || st.Batches != 0 || st.AlreadyRestored != 4 { // two batches each
		t.Fatalf("a complete part run again: %+v", st)
	}
	runParts(t, e.dst, e.r, m, p.ID, half[1:], Options{})
	// Two processes finish it at once (their done records differ in
	// time: the first written stands), then one again.
	var errs [2]error
	var wg sync.WaitGroup
	for i := range errs {
		c := newClient(t, e.dst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Finish(ctx, c, e.r, m, p.ID, Options{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("Finish at once: %v", err)
	}
	if st, err := Finish(ctx, e.dc, e.r, m, p.ID, Options{}); err != nil || !st.Complete {
		t.Fatalf("Finish again: %+v, %v", st, err)
	}
	if got, want := committed(t, e.dst, "t"), committed(t, e.src, "t"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored %v, want %v", got, want)
	}
	// A part of another restore, or options that make another one.
	if _, err := RunPart(ctx, e.dc, e.r, m, p.ID, []client.TopicPartition{{Topic: "t", Partition: 9}}, Options{}); err == nil || !strings.Contains(err.Error(), "t/9 is not a target partition") {
		t.Fatalf("RunPart of a partition the restore does not have: %v", err)
	}
	if _, err := Finish(ctx, e.dc, e.r, m, p.ID, Options{ToOffset: map[client.TopicPartition]int64{{Topic: "t", Partition: 0}: 3}}); err == nil || !strings.Contains(err.Error(), "not "+p.ID) {
		t.Fatalf("Finish with other options: %v", err)
	}
}

// Two processes prepare the same restore at once, four times over: both
// get the same id without an error, one creates the topic, one start
// record stands. A third prepares it after parts have written records:
// it joins, rather than refuse partitions that hold records.
func TestPrepareConcurrently(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(3, "t"))
	for b := range 6 {
		e.src.Produce(t, "t", int32(b%3), records(fmt.Sprint("b", b), 10)...)
	}
	m := e.backup(t)
	for round := range 4 {
		opts := Options{Remap: []Remap{{regexp.MustCompile("t"), fmt.Sprint("round", round)}}}
		var ps [2]*Prepared
		var errs [2]error
		var wg sync.WaitGroup
		for i := range ps {
			c := newClient(t, e.dst)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ps[i], errs[i] = Prepare(ctx, c, e.r, m, opts)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if ps[0].ID != ps[1].ID || ps[0].TopicsCreated+ps[1].TopicsCreated != 1 {
			t.Fatalf("round %d: prepared %+v and %+v", round, ps[0], ps[1])
		}
		start, err := e.r.RestoreStart(ctx, ps[0].ID)
		if err != nil || start == nil || len(start.Partitions) != 3 {
			t.Fatalf("round %d: start record %+v, %v", round, start, err)
		}
		runParts(t, e.dst, e.r, m, ps[0].ID, [][]client.TopicPartition{ps[0].Partitions[:1]}, opts)
		late, err := Prepare(ctx, newClient(t, e.dst), e.r, m, opts)
		if err != nil || !late.Resumed || late.ID != ps[0].ID {
			t.Fatalf("round %d: prepared after a part ran: %+v, %v", round, late, err)
		}
	}
}

// Records spread by key and a point-in-time window, through the split
// path: two parts at once hold exactly what one Run into another cluster
// does.
func TestRunPartSpreadAndWindow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(3, "k"), kfaketest.Topics(2, "w"))
	for b := range 9 {
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: kgo.Lz4Compression()}, "k", int32(b%3), keyed(fmt.Sprint("b", b), 25)...)
		e.src.Produce(t, "w", int32(b%2), records(fmt.Sprint("w", b), 12)...)
	}
	m := e.backup(t)
	for _, tc := range []struct {
		name, topic string
		opts        Options
	}{
		{"spread by key", "k", Options{Topics: []*regexp.Regexp{regexp.MustCompile("k")}, PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("k"), Hash: 4}}}},
		{"window", "w", Options{Topics: []*regexp.Regexp{regexp.MustCompile("w")}, From: time.UnixMilli(1700000002500), To: time.UnixMilli(1700000009000),
			ToOffset: map[client.TopicPartition]int64{{Topic: "w", Partition: 1}: 40}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := kfaketest.Start(t)
			if _, err := Run(ctx, newClient(t, ref), e.r, m, tc.opts); err != nil {
				t.Fatal(err)
			}
			p, err := Prepare(ctx, e.dc, e.r, m, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			runParts(t, e.dst, e.r, m, p.ID, deal(p.Partitions, 2), tc.opts)
			if _, err := Finish(ctx, e.dc, e.r, m, p.ID, tc.opts); err != nil {
				t.Fatal(err)
			}
			sameTopic(t, ref, e.dst, tc.topic)
		})
	}
}

// A part handed over mid-way: the first run's ctx ends after some of
// its batches were acknowledged (a rebalance took its partitions), and
// another run, with a client of its own, restores the same partitions.
// The target holds the source exactly: no record lost or duplicated,
// same offsets. Three ways the first run can end:
//
//   - stopped cleanly while its last requests are held 300 ms by the
//     broker: it returns only once they are answered, so the target's end
//     offsets do not move after it returned;
//   - "killed": its wait for them is cut to 20 ms, so it is gone while the
//     broker still holds them, and they are appended after the next run
//     started: that run's settle wait must see them;
//   - the responses to its last requests are cut after the broker
//     appended them (the connection dropped): the producer does not send
//     them again, the next run finds them in the target.
func TestRunPartHandover(t *testing.T) {
	fs := newFaultSource(t)
	for _, tc := range []struct {
		name   string
		killed bool // the stop wait cut short
		cut    bool // responses cut instead of held
	}{{name: "clean stop"}, {name: "killed", killed: true}, {name: "connection cut", cut: true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ct := kfaketest.NewCutter()
			dst := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.CutResponses(ct))
			p, err := Prepare(ctx, newClient(t, dst), fs.r, fs.m, Options{ReplicationFactor: 1})
			if err != nil {
				t.Fatal(err)
			}
			// At the 12th produce request the first run's partitions are
			// taken away, and that request and the 3 after it held (or
			// their answers cut).
			k := dst.Kfake()
			first, cancel := context.WithCancel(ctx)
			defer cancel()
			var held, answered atomic.Int32
			var cancelled atomic.Int64
			onProduce(k, func(n int, _ *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if n == 12 {
					cancelled.Store(time.Now().UnixNano())
					cancel()
					if tc.cut {
						ct.Cut(int16(kmsg.Produce), 4)
					}
				}
				if n >= 12 && n < 16 && !tc.cut {
					held.Add(1)
					k.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
					answered.Add(1)
				}
				return nil, nil, false
			})
			if tc.killed {
				defer func(w time.Duration) { stopWait = w }(stopWait)
				stopWait = 20 * time.Millisecond
			}
			c1 := newClient(t, dst)
			st1, err1 := RunPart(first, c1, fs.r, fs.m, p.ID, p.Partitions, Options{ReplicationFactor: 1})
			stopTook := time.Since(time.Unix(0, cancelled.Load()))
			stillHeld := held.Load() - answered.Load()
			if !errors.Is(err1, context.Canceled) || st1.Batches == 0 {
				t.Fatalf("the first run: %+v, %v", st1, err1)
			}
			// End offsets on a connection of its own: on the first run's,
			// the answer would queue behind requests still held.
			c3 := newClient(t, dst)
			ends := func() map[client.TopicPartition]int64 {
				e, err := endOffsets(ctx, c3, p.Partitions)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			switch {
			case tc.killed:
				if stillHeld == 0 {
					t.Fatal("the first run waited for its requests: nothing was left on the wire")
				}
			case tc.cut:
				if ct.Cuts() == 0 {
					t.Fatal("no response was cut")
				}
			default:
				if held.Load() == 0 || stillHeld != 0 {
					t.Fatalf("%d requests held, %d still held when the first run returned", held.Load(), stillHeld)
				}
				before := ends()
				time.Sleep(700 * time.Millisecond)
				if after := ends(); !maps.Equal(before, after) {
					t.Fatalf("the target's end offsets moved after the first run returned: %v, then %v", before, after)
				}
			}
			k.DropControl()
			ct.Stop()
			st2, err := RunPart(ctx, newClient(t, dst), fs.r, fs.m, p.ID, p.Partitions, Options{ReplicationFactor: 1})
			if err != nil {
				t.Fatal(err)
			}
			if st2.AlreadyRestored == 0 || st2.Batches == 0 {
				t.Fatalf("the second run: %+v", st2)
			}
			if _, err := Finish(ctx, c1, fs.r, fs.m, p.ID, Options{ReplicationFactor: 1}); err != nil {
				t.Fatal(err)
			}
			lost, dup := fs.compare(t, dst.ConsumeAll(t, "t"))
			t.Logf("FIGURES handover=%q first_run_acked=%d still_held_at_return=%d cuts=%d second_run_found=%d sent=%d lost=%d duplicated=%d first_run_returned_after_cancel=%v",
				tc.name, st1.Batches, stillHeld, ct.Cuts(), st2.AlreadyRestored, st2.Batches, lost, dup, stopTook.Round(time.Millisecond))
		})
	}
}
