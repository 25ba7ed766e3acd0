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
)

// legacyLogs builds one log per legacy fixture: its message set, then
// three v2 records after it (an upgraded log).
func legacyLogs(t *testing.T) ([]kfaketest.Log, []string, int) {
	t.Helper()
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	var logs []kfaketest.Log
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
		l := kfaketest.Log{Data: append([]byte(nil), p.Raw...), End: p.HighWatermark}
		for _, b := range p.Batches {
			messages += len(b.Records)
		}
		h := record.NoProducer
		h.BaseOffset = l.End
		var bld record.Builder
		bld.Reset(nil, h, nil)
		for i := 0; i < 3; i++ {
			bld.Append(1700000000000+int64(i), []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("after ", name, i)), nil)
		}
		v2, _, err := bld.Finish()
		if err != nil {
			t.Fatal(err)
		}
		l.Data = append(l.Data, v2...)
		l.End += 3
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
	e.src.Serve(t, "old", logs)

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
