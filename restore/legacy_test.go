package restore

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/testfixtures"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// legacyLog is a partition's log as a broker whose message format was
// upgraded serves it: legacy message sets, then v2 batches.
type legacyLog struct {
	data    []byte
	entries []legacyLogEntry
	end     int64
}

type legacyLogEntry struct {
	pos, size int
	last      int64 // the entry's last offset
}

// serveLegacy has c answer Fetch and ListOffsets for topic from logs (one
// per partition), as a broker holding legacy data would: kfake stores v2
// batches only.
func serveLegacy(t *testing.T, c *kfaketest.Cluster, topic string, logs []*legacyLog) {
	t.Helper()
	cl := c.Client(t)
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(context.Background(), cl)
	if err != nil || len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata of %s: %v %+v", topic, err, mresp)
	}
	id := mresp.Topics[0].TopicID
	k := c.Kfake()
	k.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		for _, rt := range req.Topics {
			if rt.Topic != topic && rt.TopicID != id {
				return nil, nil, false
			}
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				if rp.Partition < 0 || int(rp.Partition) >= len(logs) {
					sp.ErrorCode = 3 // UNKNOWN_TOPIC_OR_PARTITION
				} else {
					l := logs[rp.Partition]
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = l.end, l.end, 0
					for _, e := range l.entries {
						if e.last >= rp.FetchOffset {
							sp.RecordBatches = l.data[e.pos:]
							break
						}
					}
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	k.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		for _, rt := range req.Topics {
			if rt.Topic != topic {
				return nil, nil, false
			}
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Timestamp, sp.LeaderEpoch = rp.Partition, -1, -1
				switch {
				case rp.Partition < 0 || int(rp.Partition) >= len(logs):
					sp.ErrorCode = 3 // UNKNOWN_TOPIC_OR_PARTITION
				case rp.Timestamp == -2:
					sp.Offset = 0
				default: // latest; no time index here
					sp.Offset = logs[rp.Partition].end
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// legacyLogs builds one log per legacy fixture: its message set, then
// three v2 records after it (an upgraded log).
func legacyLogs(t *testing.T) ([]*legacyLog, []string, int) {
	t.Helper()
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	var logs []*legacyLog
	var used []string
	messages := 0
	for _, name := range names {
		if !strings.HasPrefix(name, "legacy-") {
			continue
		}
		f, err := testfixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		p := f.Partitions[0]
		l := &legacyLog{data: append([]byte(nil), p.Raw...)}
		for _, b := range p.Batches {
			l.entries = append(l.entries, legacyLogEntry{pos: b.Position, size: b.Size, last: b.LastOffset})
			messages += len(b.Records)
		}
		l.end = p.HighWatermark
		h := record.NoProducer
		h.BaseOffset = l.end
		var bld record.Builder
		bld.Reset(nil, h, nil)
		for i := 0; i < 3; i++ {
			bld.Append(1700000000000+int64(i), []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("after ", name, i)), nil)
		}
		v2, _, err := bld.Finish()
		if err != nil {
			t.Fatal(err)
		}
		l.entries = append(l.entries, legacyLogEntry{pos: len(l.data), size: len(v2), last: l.end + 2})
		l.data = append(l.data, v2...)
		l.end += 3
		logs = append(logs, l)
		used = append(used, name)
	}
	if len(logs) == 0 {
		t.Fatal("no legacy fixtures")
	}
	return logs, used, messages
}

// Legacy message sets (magic 0 and 1, every codec) followed by v2 batches,
// as an upgraded broker serves them, are backed up as they came and
// restored as v2 batches: franz-go reads the same records from the target
// as it reads (decoding the legacy formats itself) from the source.
func TestRestoreLegacy(t *testing.T) {
	ctx := context.Background()
	logs, names, messages := legacyLogs(t)
	e := newEnv(t, kfaketest.Topics(len(logs), "old"))
	serveLegacy(t, e.src, "old", logs)

	want := map[int32][]string{}
	total := 0
	for _, r := range e.src.ConsumeAll(t, "old") {
		want[r.Partition] = append(want[r.Partition], legacyLine(r))
		total++
	}
	if total != messages+3*len(logs) {
		t.Fatalf("franz-go reads %d records from the source, the fixtures hold %d and 3 more per partition", total, messages)
	}

	m, bst, err := backup.Run(ctx, e.sc, e.r, backup.Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if bst.Records != int64(total) {
		t.Fatalf("backup counted %d records, want %d", bst.Records, total)
	}
	if errs := e.r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	st, err := Run(ctx, e.dc, e.r, m, Options{Remap: []Remap{{From: regexp.MustCompile(`old`), To: "new"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d partitions (%s), %d records, %d legacy messages converted into %d batches", len(logs), strings.Join(names, ", "), total, st.Converted, st.Batches)
	if st.Converted != int64(messages) {
		t.Errorf("converted %d legacy messages, want %d", st.Converted, messages)
	}
	got := map[int32][]string{}
	for _, r := range e.dst.ConsumeAll(t, "new", kgo.ReadCommitted()) {
		got[r.Partition] = append(got[r.Partition], legacyLine(r))
	}
	for p := range logs {
		w, g := want[int32(p)], got[int32(p)]
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("partition %d (%s): restored\n%s\nwant\n%s", p, names[p], strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	// A cut inside the legacy messages (inside wrappers, for the
	// compressed ones) restores exactly the records up to it.
	cut := map[client.TopicPartition]int64{}
	for p := range logs {
		cut[client.TopicPartition{Topic: "old", Partition: int32(p)}] = 4
	}
	if _, err := Run(ctx, e.dc, e.r, m, Options{Remap: []Remap{{From: regexp.MustCompile(`old`), To: "cut"}}, ToOffset: cut}); err != nil {
		t.Fatal(err)
	}
	gotCut := map[int32][]string{}
	for _, r := range e.dst.ConsumeAll(t, "cut", kgo.ReadCommitted()) {
		gotCut[r.Partition] = append(gotCut[r.Partition], legacyLine(r))
	}
	for p := range logs {
		w, g := want[int32(p)][:5], gotCut[int32(p)]
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("partition %d (%s) up to offset 4: restored\n%s\nwant\n%s", p, names[p], strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	if len(got) != len(logs) {
		keys := make([]int, 0, len(got))
		for p := range got {
			keys = append(keys, int(p))
		}
		sort.Ints(keys)
		t.Errorf("restored partitions %v, want %d", keys, len(logs))
	}
}

// legacyLine is line with an absent timestamp (magic 0) shown as -1
// however a reader represents it.
func legacyLine(r *kgo.Record) string {
	ts := r.Timestamp.UnixMilli()
	if r.Timestamp.IsZero() || ts < 0 {
		ts = -1
	}
	return fmt.Sprintf("%s %s %v %d", show(r.Key), show(r.Value), r.Headers, ts)
}
