package restore

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

const t0 = 1700000000000 // the sources' first timestamp, Unix ms

// Point-in-time restores, with bounds inside batches and between them, in
// every codec, and a batch whose timestamps go backwards: exactly the
// records in the window arrive, and the batches wholly outside it are
// not read.
func TestPointInTime(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "events"))
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	// Partition 0: ten batches of ten records, record i at t0+i s.
	for b := 0; b < 10; b++ {
		var recs []*kgo.Record
		for i := b * 10; i < b*10+10; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i)),
				Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}}, Timestamp: time.UnixMilli(t0 + int64(i)*1000)})
		}
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codecs[b%len(codecs)]}, "events", 0, recs...)
	}
	// Partition 1: one batch whose timestamps are out of order.
	var recs []*kgo.Record
	for _, s := range []int64{50, 10, 90, 30, 70} {
		recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprint("at ", s)), Timestamp: time.UnixMilli(t0 + s*1000)})
	}
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: kgo.Lz4Compression()}, "events", 1, recs...)
	m := e.backup(t)
	source := e.src.ConsumeAll(t, "events", kgo.ReadCommitted())

	at := func(s int64) time.Time { return time.UnixMilli(t0 + s*1000) }
	for i, tc := range []struct {
		name     string
		from, to time.Time
		toOffset map[client.TopicPartition]int64
		// batches re-encoded, and left out as outside the window
		filtered, outside int64
	}{
		{name: "bounds inside batches", from: at(15), to: at(43), filtered: 3, outside: 6},
		{name: "bounds between batches", from: at(20), to: at(39), filtered: 1, outside: 8},
		{name: "to only", to: at(33), filtered: 2, outside: 6},
		{name: "from only", from: at(47), filtered: 2, outside: 4},
		{name: "to-offset and from", from: at(5), toOffset: map[client.TopicPartition]int64{{Topic: "events", Partition: 0}: 25}, filtered: 2},
		{name: "to-offset on a batch's last record", toOffset: map[client.TopicPartition]int64{{Topic: "events", Partition: 0}: 59}},
		{name: "nothing in the window", from: at(1000), outside: 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := fmt.Sprintf("w%d.events", i)
			opts := Options{From: tc.from, To: tc.to, ToOffset: tc.toOffset, Remap: []Remap{{regexp.MustCompile(`events`), dest}}}
			st, err := Run(ctx, e.dc, e.r, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			in := func(r *kgo.Record) bool {
				ts := r.Timestamp.UnixMilli()
				if !tc.from.IsZero() && ts < tc.from.UnixMilli() || !tc.to.IsZero() && ts > tc.to.UnixMilli() {
					return false
				}
				last, ok := tc.toOffset[client.TopicPartition{Topic: "events", Partition: r.Partition}]
				return !ok || r.Offset <= last
			}
			want := map[int32][]string{}
			for _, r := range source {
				if in(r) {
					want[r.Partition] = append(want[r.Partition], line(r))
				}
			}
			got := committed(t, e.dst, dest)
			for p := int32(0); p < 2; p++ {
				if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
					t.Fatalf("partition %d: restored\n%v\nwant\n%v", p, got[p], want[p])
				}
			}
			if st.Filtered != tc.filtered || st.Outside != tc.outside {
				t.Errorf("%d batches re-encoded and %d left out, want %d and %d", st.Filtered, st.Outside, tc.filtered, tc.outside)
			}
		})
	}
}
