package restore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Consumer group offsets committed on the source, at a batch boundary,
// inside a batch, inside an aborted transaction and at the end, are
// translated so that a consumer resuming from them on the target reads
// exactly the restored records it had not read on the source; with a
// point-in-time cut too. A group with active members on the target is
// left alone, and the restore says so.
func TestGroupOffsets(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "orders"))
	for b := 0; b < 5; b++ { // partition 0: offsets 0..49 in batches of 10
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: kgo.Lz4Compression()}, "orders", 0, records(fmt.Sprint("b", b), 10)...)
	}
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 0, records("aborted", 5)...) // 50..54, marker 55
	e.src.Produce(t, "orders", 0, records("late", 10)...)                                                       // 56..65
	e.src.Produce(t, "orders", 1, records("p1", 7)...)                                                          // 0..6
	commits := map[string]map[client.TopicPartition]int64{
		"inside":   {{Topic: "orders", Partition: 0}: 25, {Topic: "orders", Partition: 1}: 0},
		"boundary": {{Topic: "orders", Partition: 0}: 30, {Topic: "orders", Partition: 1}: 7},
		"aborted":  {{Topic: "orders", Partition: 0}: 52},
		"end":      {{Topic: "orders", Partition: 0}: 66, {Topic: "orders", Partition: 1}: 3},
		"live":     {{Topic: "orders", Partition: 0}: 10},
	}
	for g, offs := range commits {
		req := map[client.TopicPartition]client.GroupOffset{}
		for tp, o := range offs {
			req[tp] = client.GroupOffset{Offset: o, LeaderEpoch: -1}
		}
		if res, err := e.sc.CommitGroupOffsets(ctx, g, req); err != nil {
			t.Fatal(err)
		} else {
			for tp, err := range res {
				if err != nil {
					t.Fatalf("commit %s %s: %v", g, tp, err)
				}
			}
		}
	}
	m := e.backup(t)
	source := e.src.ConsumeAll(t, "orders", kgo.ReadCommitted())

	// "live" has a member on the target before the restore.
	if err := e.dc.CreateTopics(ctx, []client.TopicSpec{{Name: "elsewhere", NumPartitions: 1, ReplicationFactor: 1}})["elsewhere"]; err != nil {
		t.Fatal(err)
	}
	live := e.dst.Client(t, kgo.ConsumerGroup("live"), kgo.ConsumeTopics("elsewhere"))
	go live.PollFetches(ctx)
	waitMembers(t, e.dc, "live")

	for _, tc := range []struct {
		name     string
		toOffset map[client.TopicPartition]int64
	}{
		{name: "whole"},
		{name: "cut", toOffset: map[client.TopicPartition]int64{{Topic: "orders", Partition: 0}: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := tc.name + ".orders"
			opts := Options{Groups: true, ToOffset: tc.toOffset, Remap: []Remap{{regexp.MustCompile("orders"), dest}},
				GroupRemap: []Remap{{regexp.MustCompile("(.*)"), tc.name + ".$1"}}}
			_, err := Run(ctx, e.dc, e.r, m, opts)
			if tc.name == "whole" {
				// Renamed, "live" is a new group; without renaming it
				// would be the live one.
				if err != nil {
					t.Fatal(err)
				}
				opts.GroupRemap = nil
				st, err := Run(ctx, e.dc, e.r, m, opts)
				if err == nil || !strings.Contains(err.Error(), "group live has 1 active members") || !st.Complete || len(st.GroupsCommitted) != 4 {
					t.Fatalf("committing into a live group: %+v, %v", st, err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			restored := e.dst.ConsumeAll(t, dest, kgo.ReadCommitted())
			got, err := e.dc.FetchGroupOffsets(ctx, []string{tc.name + ".inside", tc.name + ".boundary", tc.name + ".aborted", tc.name + ".end", tc.name + ".live"})
			if err != nil {
				t.Fatal(err)
			}
			for g, offs := range commits {
				for tp, c := range offs {
					last, cut := tc.toOffset[tp]
					// What the group had not read on the source, as far
					// as the restore goes...
					var want []string
					for _, r := range source {
						if r.Partition == tp.Partition && r.Offset >= c && (!cut || r.Offset <= last) {
							want = append(want, string(r.Key)+"="+string(r.Value))
						}
					}
					// ...is what it reads on the target from its offset.
					o := got[tc.name+"."+g][client.TopicPartition{Topic: dest, Partition: tp.Partition}]
					if o.Err != nil || o.Offset < 0 {
						t.Fatalf("group %s %s: offset %d, %v", g, tp, o.Offset, o.Err)
					}
					var have []string
					for _, r := range restored {
						if r.Partition == tp.Partition && r.Offset >= o.Offset {
							have = append(have, string(r.Key)+"="+string(r.Value))
						}
					}
					if fmt.Sprint(have) != fmt.Sprint(want) {
						t.Errorf("group %s, %s committed %d, restored at %d: reads\n%v\nwant\n%v", g, tp, c, o.Offset, have, want)
					}
				}
			}
		})
	}

	// A real consumer resumes where the translated offset says.
	cl := e.dst.Client(t, kgo.ConsumerGroup("whole.inside"), kgo.ConsumeTopics("whole.orders"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var keys []string
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(keys) < 31+7 { // p0 from source offset 25 (25..49 and 56..65), p1 from 0
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("consumer read %d records: %v", len(keys), keys)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Partition == 0 {
				keys = append(keys, string(r.Key))
			}
		})
		if len(keys) == 35 {
			break
		}
	}
	if keys[0] != "b2-5" || keys[24] != "b4-9" || keys[25] != "late-0" {
		t.Fatalf("the resumed consumer read %v", keys)
	}
}

func waitMembers(t *testing.T, c *client.Client, group string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d, err := c.DescribeGroups(context.Background(), []string{group})
		if err == nil && len(d[group].Members) > 0 {
			return
		}
	}
	t.Fatalf("group %s has no members", group)
}

// Group offsets with partition maps: an explicit one-to-one map (here a
// permutation) translates each offset to the mapped target partition, and
// a consumer of the group resumes there; merged and key-spread partitions
// have no exact translation: those offsets are not committed, and the
// restore reports them (other partitions of the group are committed).
func TestGroupOffsetsPartitionMap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "orders"), kfaketest.Topics(1, "other"))
	for b := range 4 {
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: kgo.Lz4Compression()}, "orders", int32(b%2), records(fmt.Sprint("b", b), 10)...)
	}
	e.src.Produce(t, "other", 0, records("o", 5)...)
	commit := map[client.TopicPartition]client.GroupOffset{
		{Topic: "orders", Partition: 0}: {Offset: 15, LeaderEpoch: -1}, // b2-5
		{Topic: "orders", Partition: 1}: {Offset: 3, LeaderEpoch: -1},  // b1-3
		{Topic: "other", Partition: 0}:  {Offset: 2, LeaderEpoch: -1},
	}
	if _, err := e.sc.CommitGroupOffsets(ctx, "g", commit); err != nil {
		t.Fatal(err)
	}
	m := e.backup(t)
	source := e.src.ConsumeAll(t, "orders", kgo.ReadCommitted())
	for _, tc := range []struct {
		name          string
		pm            PartitionMap
		notTranslated []string
	}{
		{"perm", PartitionMap{Topic: regexp.MustCompile("orders"), Partitions: map[int32]int32{0: 1, 1: 0}}, nil},
		{"merge", PartitionMap{Topic: regexp.MustCompile("orders"), Partitions: map[int32]int32{0: 0, 1: 0}}, []string{"g: orders/0,1"}},
		{"hash", PartitionMap{Topic: regexp.MustCompile("orders"), Hash: 3}, []string{"g: orders/0,1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Groups: true, Remap: []Remap{{regexp.MustCompile("(.*)"), tc.name + ".$1"}},
				GroupRemap: []Remap{{regexp.MustCompile("(.*)"), tc.name + ".$1"}}, PartitionMap: []PartitionMap{tc.pm}}
			st, err := Run(ctx, e.dc, e.r, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(st.GroupsNotTranslated) != fmt.Sprint(tc.notTranslated) || fmt.Sprint(st.GroupsCommitted) != "["+tc.name+".g]" {
				t.Fatalf("stats %+v", st)
			}
			got, err := e.dc.FetchGroupOffsets(ctx, []string{tc.name + ".g"})
			if err != nil {
				t.Fatal(err)
			}
			offs := got[tc.name+".g"]
			if o := offs[client.TopicPartition{Topic: tc.name + ".other", Partition: 0}]; o.Err != nil || o.Offset != 2 {
				t.Fatalf("%s.other/0: %+v", tc.name, o)
			}
			for tp, o := range offs {
				if tp.Topic == tc.name+".orders" && tc.name != "perm" {
					t.Fatalf("an offset was committed for %s: %+v", tp, o)
				}
			}
			if tc.name != "perm" {
				return
			}
			// Source partition 0 is in target partition 1, and 1 in 0.
			if o := offs[client.TopicPartition{Topic: "perm.orders", Partition: 1}]; o.Err != nil || o.Offset != 15 {
				t.Fatalf("perm.orders/1: %+v", o)
			}
			if o := offs[client.TopicPartition{Topic: "perm.orders", Partition: 0}]; o.Err != nil || o.Offset != 3 {
				t.Fatalf("perm.orders/0: %+v", o)
			}
			// A real consumer of the group resumes where it left off.
			cl := e.dst.Client(t, kgo.ConsumerGroup("perm.g"), kgo.ConsumeTopics("perm.orders"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			read := map[int32][]string{}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for n := 0; n < 5+17; {
				fs := cl.PollFetches(pctx)
				if pctx.Err() != nil {
					t.Fatalf("the consumer read %v", read)
				}
				fs.EachRecord(func(r *kgo.Record) {
					read[r.Partition] = append(read[r.Partition], line(r))
					n++
				})
			}
			// What the group had not read on the source.
			want := map[int32][]string{}
			for _, r := range source {
				if c := commit[client.TopicPartition{Topic: "orders", Partition: r.Partition}]; r.Offset >= c.Offset {
					want[1-r.Partition] = append(want[1-r.Partition], line(r))
				}
			}
			if len(want[0]) != 17 || len(want[1]) != 5 || fmt.Sprint(read) != fmt.Sprint(want) {
				t.Fatalf("the resumed consumer read\n%v\nwant\n%v", read, want)
			}
		})
	}
}
