package record_test

// ktape reads every batch written by another client (kcat/librdkafka,
// franz-go, confluent-kafka, kafka-python, and legacy message sets from
// kafka-python's builders) exactly as its writer sent it. The fixtures and
// the script that regenerates them are in testdata/batches.

import (
	"bytes"
	"testing"

	"github.com/ktape/ktape/internal/testfixtures"
	"github.com/ktape/ktape/record"
)

func TestFixturesReadAsWritten(t *testing.T) {
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 30 {
		t.Fatalf("only %d fixtures found", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			fx, err := testfixtures.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range fx.Partitions {
				if fx.Magic == 2 {
					checkV2Fixture(t, p)
				} else {
					checkLegacyFixture(t, p)
				}
			}
		})
	}
}

func checkV2Fixture(t *testing.T, p testfixtures.Partition) {
	t.Helper()
	var r record.Reader
	it := record.NewIter(p.Raw)
	i := 0
	for ; it.Next(); i++ {
		if i >= len(p.Batches) {
			t.Fatalf("more batches than the writer sent")
		}
		b, w := it.Batch(), p.Batches[i]
		if err := b.Validate(); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		ts := "create"
		if b.LogAppendTime() {
			ts = "log_append"
		}
		if it.Pos()-len(b) != w.Position || len(b) != w.Size || b.BaseOffset() != w.BaseOffset || b.LastOffset() != w.LastOffset ||
			b.PartitionLeaderEpoch() != w.PartitionLeaderEpoch || b.CRC() != w.CRC || b.Codec().String() != w.Codec ||
			ts != w.TimestampType || b.IsTransactional() != w.Transactional || b.IsControl() != w.Control ||
			b.ProducerID() != w.ProducerID || b.ProducerEpoch() != w.ProducerEpoch || b.BaseSequence() != w.BaseSequence ||
			b.NumRecords() != w.RecordCount || b.MaxTimestamp() != w.MaxTimestamp {
			t.Fatalf("batch %d header differs from what the writer sent: %+v", i, w)
		}
		ri, err := r.Records(b)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		j := 0
		for ; ri.Next(); j++ {
			checkRecord(t, ri.Record(), w.Records[j])
			if b.IsControl() {
				c, err := record.ParseControl(ri.Record())
				if err != nil {
					t.Fatal(err)
				}
				if (w.ControlType == "commit") != c.IsCommit() || (w.ControlType == "abort") != c.IsAbort() {
					t.Fatalf("batch %d: control %+v, writer says %q", i, c, w.ControlType)
				}
			}
		}
		if err := ri.Err(); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if j != len(w.Records) {
			t.Fatalf("batch %d: %d records, writer sent %d", i, j, len(w.Records))
		}
	}
	if it.Err() != nil || it.Truncated() || i != len(p.Batches) {
		t.Fatalf("%d batches of %d, err %v, truncated %v", i, len(p.Batches), it.Err(), it.Truncated())
	}
}

func checkRecord(t *testing.T, got *record.Record, w testfixtures.Record) {
	t.Helper()
	if got.Offset != w.Offset || got.Timestamp != w.Timestamp || !sameBytes(got.Key, w.Key) || !sameBytes(got.Value, w.Value) || got.NumHeaders != len(w.Headers) {
		t.Fatalf("record at offset %d: got offset %d ts %d key %q value %q headers %d; writer sent %+v",
			w.Offset, got.Offset, got.Timestamp, got.Key, got.Value, got.NumHeaders, w)
	}
	hs := got.Headers()
	for k := 0; hs.Next(); k++ {
		if string(hs.Key()) != w.Headers[k].Key || !sameBytes(hs.Value(), w.Headers[k].Value) {
			t.Fatalf("record %d header %d: %q=%q, writer sent %+v", w.Offset, k, hs.Key(), hs.Value(), w.Headers[k])
		}
	}
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

// Legacy sets are read message by message, then converted to v2 batches
// and read again: both must give the records the writer sent.
func checkLegacyFixture(t *testing.T, p testfixtures.Partition) {
	t.Helper()
	var want []testfixtures.Record
	for _, b := range p.Batches {
		want = append(want, b.Records...)
	}
	it := record.NewLegacyIter(p.Raw, nil)
	i := 0
	for ; it.Next(); i++ {
		m := it.Message()
		checkRecord(t, &record.Record{Offset: m.Offset, Timestamp: m.Timestamp, Key: m.Key, Value: m.Value}, want[i])
	}
	if it.Err() != nil || it.Truncated() || i != len(want) {
		t.Fatalf("legacy: %d messages of %d, err %v", i, len(want), it.Err())
	}
	v2, n, err := record.ConvertLegacy(nil, p.Raw, nil, nil, 0)
	if err != nil || n != len(want) {
		t.Fatalf("convert: %d messages, %v", n, err)
	}
	var r record.Reader
	bi := record.NewIter(v2)
	i = 0
	for bi.Next() {
		if err := bi.Batch().Validate(); err != nil {
			t.Fatal(err)
		}
		ri, err := r.Records(bi.Batch())
		if err != nil {
			t.Fatal(err)
		}
		for ri.Next() {
			checkRecord(t, ri.Record(), want[i])
			i++
		}
		if ri.Err() != nil {
			t.Fatal(ri.Err())
		}
	}
	if i != len(want) {
		t.Fatalf("converted: %d records of %d", i, len(want))
	}
	// Entry by entry, as a backup indexes them.
	li := record.NewLogIter(p.Raw)
	i = 0
	for ; li.Next(); i++ {
		fb := p.Batches[i]
		e, err := record.ParseLegacyEntry(li.Batch(), nil)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		first, last := fb.Records[0], fb.Records[len(fb.Records)-1]
		if e.BaseOffset != first.Offset || e.LastOffset != last.Offset || e.LastOffset != fb.LastOffset ||
			e.Messages != len(fb.Records) || e.Magic != fb.Magic || e.FirstTime != first.Timestamp {
			t.Errorf("entry %d: %+v, fixture offsets %d-%d, %d messages, magic %d, first time %d",
				i, e, first.Offset, last.Offset, len(fb.Records), fb.Magic, first.Timestamp)
		}
	}
	if li.Err() != nil || i != len(p.Batches) {
		t.Fatalf("log iterator: %d entries of %d, err %v", i, len(p.Batches), li.Err())
	}
}
