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
	"github.com/ktape/ktape/repo"
	"github.com/twmb/franz-go/pkg/kgo"
)

// keyed makes n records whose keys repeat (k0..k10), every fifth with a
// null key, some with headers, an empty value and an empty key among
// them, timestamps apart.
func keyed(prefix string, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := range n {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%11)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i)),
			Timestamp: time.UnixMilli(1700000000000 + int64(i)*1000)}
		switch {
		case i%5 == 3:
			r.Key = nil
		case i%13 == 4:
			r.Key = []byte{}
		}
		if i%3 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(prefix)}, {Key: "null"}}
		}
		out = append(out, r)
	}
	return out
}

// franzPartition is where franz-go's key partitioner (Kafka's default,
// murmur2) puts a keyed record among n partitions.
func franzPartition(key []byte, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(&kgo.Record{Key: key}, n))
}

// spreadByKey is what restoring src spread over n partitions by key must
// give: per target partition, the records of source partition 0 that go
// there, then those of 1, ..., each in its source order; keyed records in
// franz-go's partition for their key, null keys in source partition % n.
func spreadByKey(src []*kgo.Record, sources, n int) map[int32][]string {
	out := map[int32][]string{}
	for p := range int32(sources) {
		for _, r := range src {
			if r.Partition != p {
				continue
			}
			q := p % int32(n)
			if r.Key != nil {
				q = franzPartition(r.Key, n)
			}
			out[q] = append(out[q], line(r))
		}
	}
	return out
}

// Records spread by key, 3 partitions into 5 and 4 into 2: every record
// restored exactly once (key, value, headers, timestamp), in the partition
// franz-go's partitioner picks for its key (null keys in source partition
// % N), each target partition getting source 0's records, then 1's, ...
// in order (so each key's order is kept), in the codec its source batch
// had, as CreateTime; aborted transactions and markers left out. Topics
// are created with N partitions; every target partition has a version 2
// offset map accounting for its records.
func TestPartitionMapByKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(3, "three"), kfaketest.Topics(4, "four"))
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for i := range 12 {
		for _, topic := range []string{"three", "four"} {
			e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codecs[i%len(codecs)]}, topic, int32(i%3), keyed(fmt.Sprint(topic, "-b", i), 30)...)
		}
	}
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit, Compression: kgo.Lz4Compression()}, "three", 1, keyed("committed", 10)...)
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "three", 1, keyed("aborted", 10)...)
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort, Compression: kgo.ZstdCompression()}, "four", 3, keyed("aborted", 10)...)
	e.src.Produce(t, "four", 3, keyed("four-last", 40)...)
	m := e.backup(t)

	opts := Options{Remap: []Remap{{regexp.MustCompile(`(.*)`), "spread.$1"}},
		PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("thr.*"), Hash: 5}, {Topic: regexp.MustCompile("four"), Hash: 2}}}
	st, err := Run(ctx, e.dc, e.r, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.TopicsCreated != 2 || st.Repartitioned == 0 || st.Renumbered != 0 || st.Filtered != 0 || st.Aborted != 2 || st.Partitions != 7 {
		t.Fatalf("stats %+v", st)
	}
	codecOf := map[string]uint8{}
	for _, topic := range []string{"three", "four"} {
		for _, r := range e.src.ConsumeAll(t, topic, kgo.ReadCommitted()) {
			codecOf[line(r)] = r.Attrs.CompressionType()
		}
	}
	for _, tc := range []struct {
		topic      string
		sources, n int
	}{{"three", 3, 5}, {"four", 4, 2}} {
		src := e.src.ConsumeAll(t, tc.topic, kgo.ReadCommitted())
		want := spreadByKey(src, tc.sources, tc.n)
		restored := e.dst.ConsumeAll(t, "spread."+tc.topic, kgo.ReadUncommitted())
		got := map[int32][]string{}
		for _, r := range restored {
			got[r.Partition] = append(got[r.Partition], line(r))
			if c := codecOf[line(r)]; r.Attrs.CompressionType() != c || r.Attrs.TimestampType() != 0 {
				t.Fatalf("%s: record %s restored with codec %d, timestamp type %d; its source batch had codec %d", tc.topic, line(r), r.Attrs.CompressionType(), r.Attrs.TimestampType(), c)
			}
			if strings.HasPrefix(string(r.Value), "aborted") {
				t.Fatalf("aborted record %s restored", line(r))
			}
		}
		if len(restored) != len(src) {
			t.Fatalf("%s: %d records restored, the source has %d", tc.topic, len(restored), len(src))
		}
		for q := range int32(tc.n) {
			if len(want[q]) == 0 || fmt.Sprint(got[q]) != fmt.Sprint(want[q]) {
				t.Fatalf("%s: partition %d holds\n%v\nwant\n%v", tc.topic, q, got[q], want[q])
			}
		}
		if _, ok := got[int32(tc.n)]; ok {
			t.Fatalf("%s: records beyond partition %d", tc.topic, tc.n-1)
		}
		md, err := e.dc.RefreshMetadata(ctx, []string{"spread." + tc.topic})
		if err != nil || len(md.Topics["spread."+tc.topic].Partitions) != tc.n {
			t.Fatalf("%s: created with %d partitions, want %d (%v)", tc.topic, len(md.Topics["spread."+tc.topic].Partitions), tc.n, err)
		}
	}
	// The offset maps: version 2, entries from every source, in source
	// order, adding up to each partition's records.
	done, err := e.r.RestoreDone(ctx, st.ID)
	if err != nil || done == nil || len(done.Partitions) != 7 || len(done.Groups) != 0 {
		t.Fatalf("done %+v, %v", done, err)
	}
	for _, p := range done.Partitions {
		om, err := e.r.OffsetMap(ctx, p.Map)
		if err != nil {
			t.Fatal(err)
		}
		var records int64
		last := -1
		om.Each(func(en repo.OffsetMapEntry) error {
			records += en.Records
			if en.Source < last {
				t.Errorf("%s/%d: source %d after source %d", p.Topic, p.Partition, en.Source, last)
			}
			last = en.Source
			return nil
		})
		if om.Version() != 2 || records != p.End-p.Start || int64(om.Len()) != p.Batches {
			t.Errorf("%s/%d: map version %d, %d records in %d entries; the partition has %d in %d batches", p.Topic, p.Partition, om.Version(), records, om.Len(), p.End-p.Start, p.Batches)
		}
	}

	// A point in time: only the records up to To, spread the same way.
	to := time.UnixMilli(1700000012000)
	cut := opts
	cut.To, cut.Remap = to, []Remap{{regexp.MustCompile(`(.*)`), "cut.$1"}}
	if st, err = Run(ctx, e.dc, e.r, m, cut); err != nil || st.Filtered == 0 || st.Repartitioned == 0 {
		t.Fatalf("restore to a point in time: %+v, %v", st, err)
	}
	var src []*kgo.Record
	for _, r := range e.src.ConsumeAll(t, "three", kgo.ReadCommitted()) {
		if !r.Timestamp.After(to) {
			src = append(src, r)
		}
	}
	if got, want := committed(t, e.dst, "cut.three"), spreadByKey(src, 3, 5); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored to %s:\n%v\nwant\n%v", to, got, want)
	}
}

// Explicit maps send the stored batches as they are: a permutation puts
// each source partition's records, in order, into its target partition; a
// merge puts source 0's records then source 1's into one partition. A
// target topic is created with the highest target partition plus one.
func TestPartitionMapExplicit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(4, "orders"))
	for i := range 16 {
		codec := []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression()}[i%2]
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(i%4), records(fmt.Sprint("b", i), 10)...)
	}
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 2, records("aborted", 5)...)
	e.src.Produce(t, "orders", 2, records("after", 5)...)
	m := e.backup(t)
	src := committed(t, e.src, "orders")

	for _, tc := range []struct {
		name string
		pm   map[int32]int32
		want map[int32][]string
		n    int
	}{
		{"perm", map[int32]int32{0: 2, 1: 0, 2: 3, 3: 1}, map[int32][]string{2: src[0], 0: src[1], 3: src[2], 1: src[3]}, 4},
		{"merge", map[int32]int32{0: 0, 1: 0, 2: 1, 3: 1}, map[int32][]string{0: append(append([]string{}, src[0]...), src[1]...), 1: append(append([]string{}, src[2]...), src[3]...)}, 2},
		{"wider", map[int32]int32{0: 0, 1: 5, 2: 2, 3: 3}, map[int32][]string{0: src[0], 5: src[1], 2: src[2], 3: src[3]}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Remap: []Remap{{regexp.MustCompile("orders"), tc.name}},
				PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("orders"), Partitions: tc.pm}}}
			st, err := Run(ctx, e.dc, e.r, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Renumbered != 0 || st.Filtered != 0 || st.Repartitioned != 0 || st.TopicsCreated != 1 || st.Aborted != 1 {
				t.Fatalf("stats %+v", st)
			}
			if got := committed(t, e.dst, tc.name); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("restored\n%v\nwant\n%v", got, tc.want)
			}
			md, err := e.dc.RefreshMetadata(ctx, []string{tc.name})
			if err != nil || len(md.Topics[tc.name].Partitions) != tc.n {
				t.Fatalf("created with %d partitions, want %d (%v)", len(md.Topics[tc.name].Partitions), tc.n, err)
			}
			start, err := e.r.RestoreStart(ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range start.Partitions {
				if tc.name == "merge" && len(p.Sources) != 2 || tc.name != "merge" && len(p.Sources) != 1 {
					t.Fatalf("start.json lists %+v", p)
				}
			}
		})
	}

	// Into an existing topic with too few partitions: refused, before
	// anything is written.
	if err := e.dc.CreateTopics(ctx, []client.TopicSpec{{Name: "narrow", NumPartitions: 2, ReplicationFactor: 1}})["narrow"]; err != nil {
		t.Fatal(err)
	}
	opts := Options{Remap: []Remap{{regexp.MustCompile("orders"), "narrow"}},
		PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("orders"), Partitions: map[int32]int32{0: 0, 1: 1, 2: 2, 3: 0}}}}
	if _, err := Run(ctx, e.dc, e.r, m, opts); err == nil || !strings.Contains(err.Error(), "topic narrow has 2 partitions; restoring orders needs 3") {
		t.Fatalf("restore into too few partitions: %v", err)
	}
	opts.PartitionMap = []PartitionMap{{Topic: regexp.MustCompile("orders"), Hash: 3}}
	if _, err := Run(ctx, e.dc, e.r, m, opts); err == nil || !strings.Contains(err.Error(), "needs 3") {
		t.Fatalf("restore by key into too few partitions: %v", err)
	}
}

// Plan with partition maps: a source partition left out of an explicit
// map, one the backup does not have, and a map matching nothing are
// errors; the first matching map applies.
func TestPlanPartitionMap(t *testing.T) {
	m := &repo.Manifest{Topics: []repo.Topic{
		{Name: "orders", PartitionsCount: 3, Partitions: []repo.Partition{{Partition: 0}, {Partition: 1}, {Partition: 2}}},
		{Name: "payments", PartitionsCount: 2, Partitions: []repo.Partition{{Partition: 0}, {Partition: 1}}},
	}}
	re := regexp.MustCompile
	plan := func(pms ...PartitionMap) string {
		ts, err := Plan(m, Options{PartitionMap: pms})
		if err != nil {
			return err.Error()
		}
		var s []string
		for _, t := range ts {
			s = append(s, fmt.Sprintf("%s>%s:%d", t.Source, t.Dest, t.create))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		pms  []PartitionMap
		want string
	}{
		{nil, "orders/0>orders/0:3 orders/1>orders/1:3 orders/2>orders/2:3 payments/0>payments/0:2 payments/1>payments/1:2"},
		{[]PartitionMap{{Topic: re("orders"), Partitions: map[int32]int32{0: 1, 1: 0, 2: 0}}},
			"orders/0>orders/1:2 orders/1>orders/0:2 orders/2>orders/0:2 payments/0>payments/0:2 payments/1>payments/1:2"},
		{[]PartitionMap{{Topic: re("pay.*"), Hash: 7}, {Topic: re(".*"), Hash: 1}},
			"orders/0>orders/-1:1 orders/1>orders/-1:1 orders/2>orders/-1:1 payments/0>payments/-1:7 payments/1>payments/-1:7"},
		{[]PartitionMap{{Topic: re("orders"), Partitions: map[int32]int32{0: 0, 2: 1}}},
			"restore: the partition map orders=0:0,2:1 leaves out source partitions 1 of topic orders: map every backed-up partition (partitions are never dropped silently)"},
		{[]PartitionMap{{Topic: re("orders"), Partitions: map[int32]int32{0: 0, 1: 0, 2: 0, 3: 1}}},
			"restore: the partition map orders=0:0,1:0,2:0,3:1 names source partition 3, which the backup of topic orders does not have"},
		{[]PartitionMap{{Topic: re("order"), Hash: 2}},
			"restore: the partition map order=hash:2 matches no topic restored (or an earlier map matches first)"},
	} {
		if got := plan(tc.pms...); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.pms, got, tc.want)
		}
	}
}

func TestParsePartitionMap(t *testing.T) {
	for spec, want := range map[string]string{
		"orders=hash:12":          "orders=hash:12",
		`orders\..*=0:0,1:0,2:1`:  `orders\..*=0:0,1:0,2:1`,
		"a=b=1:0":                 "a=b=1:0",
		"orders=hash:0":           `hash:0: want a partition count from 1 to 65536`,
		"orders=hash:x":           `hash:x: want a partition count from 1 to 65536`,
		"orders=0:0,1":            `"1": want SRC:DST, two partition numbers (0 or more), or hash:N`,
		"orders=0:0,0:1":          `"0:1": source partition 0 is mapped twice`,
		"orders=0:-1":             `"0:-1": want SRC:DST, two partition numbers (0 or more), or hash:N`,
		"orders":                  "want TOPIC_REGEX=hash:N or TOPIC_REGEX=SRC:DST[,SRC:DST...]",
		"orders=":                 "want TOPIC_REGEX=hash:N or TOPIC_REGEX=SRC:DST[,SRC:DST...]",
		"(=hash:2":                "topic expression \"(\": error parsing regexp: missing closing ): `(`",
		"orders=0:0,,1:1":         `"": want SRC:DST, two partition numbers (0 or more), or hash:N`,
		"orders=99999999999:0":    `"99999999999:0": want SRC:DST, two partition numbers (0 or more), or hash:N`,
		"orders=hash:99999999999": `hash:99999999999: want a partition count from 1 to 65536`,
	} {
		pm, err := ParsePartitionMap(spec)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = pm.String()
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", spec, got, want)
		}
	}
}

// A restore spread by key, interrupted mid-way (slowed, and its context
// cancelled) and run again, gives exactly what an uninterrupted one does:
// the same records in the same order in every target partition.
func TestPartitionMapResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(3, "orders"))
	for b := range 30 {
		codec := []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression(), kgo.Lz4Compression()}[b%3]
		recs := keyed(fmt.Sprint("b", b), 40)
		for i, r := range recs {
			r.Value = append(r.Value, strings.Repeat(fmt.Sprint(i%10), 600)...)
		}
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(b%3), recs...)
	}
	m := e.backup(t)
	opts := func(dest string) Options {
		return Options{Remap: []Remap{{regexp.MustCompile("orders"), dest}}, Memory: 8 << 20,
			PartitionMap: []PartitionMap{{Topic: regexp.MustCompile("orders"), Hash: 5}}}
	}
	if _, err := Run(ctx, e.dc, e.r, m, opts("whole")); err != nil {
		t.Fatal(err)
	}
	slow := opts("resumed")
	slow.RateLimit = 100 << 10
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	first, err := Run(cctx, e.dc, e.r, m, slow)
	if err == nil || first.Batches == 0 {
		t.Fatalf("the interrupted restore: %+v, %v", first, err)
	}
	second, err := Run(ctx, e.dc, e.r, m, opts("resumed"))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Resumed || second.AlreadyRestored < first.Batches || second.ID != first.ID || second.Batches == 0 {
		t.Fatalf("resumed restore %+v after %+v", second, first)
	}
	whole, resumed := committed(t, e.dst, "whole"), committed(t, e.dst, "resumed")
	n := 0
	for q := range int32(5) {
		n += len(whole[q])
		if len(whole[q]) == 0 || fmt.Sprint(resumed[q]) != fmt.Sprint(whole[q]) {
			t.Fatalf("partition %d: the resumed restore holds %d records, the uninterrupted one %d, or they differ", q, len(resumed[q]), len(whole[q]))
		}
	}
	if n != 30*40 {
		t.Fatalf("%d records restored, want %d", n, 30*40)
	}
}
