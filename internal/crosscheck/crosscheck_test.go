package crosscheck_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Compare names the first field that differs, and the offset, for every
// field it compares; null and empty bytes differ.
func TestCompare(t *testing.T) {
	base := func() []*kgo.Record {
		var rs []*kgo.Record
		for i := range 3 {
			rs = append(rs, &kgo.Record{Offset: int64(10 + i), Key: []byte("k"), Value: []byte("v"),
				Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}, Timestamp: time.UnixMilli(1000), ProducerID: 7})
		}
		return rs
	}
	if err := crosscheck.Compare("t", 0, base(), base()); err != nil {
		t.Fatalf("equal records: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(rs []*kgo.Record) []*kgo.Record
		offset int64
		what   string
	}{
		{"key", func(rs []*kgo.Record) []*kgo.Record { rs[1].Key = []byte("K"); return rs }, 11, "key"},
		{"null value", func(rs []*kgo.Record) []*kgo.Record { rs[1].Value = nil; return rs }, 11, "value: repository null"},
		{"empty value", func(rs []*kgo.Record) []*kgo.Record { rs[2].Value = []byte{}; return rs }, 12, "value"},
		{"header value", func(rs []*kgo.Record) []*kgo.Record { rs[0].Headers[0].Value = []byte("y"); return rs }, 10, "header 0"},
		{"header count", func(rs []*kgo.Record) []*kgo.Record { rs[0].Headers = nil; return rs }, 10, "headers"},
		{"timestamp", func(rs []*kgo.Record) []*kgo.Record { rs[2].Timestamp = time.UnixMilli(1001); return rs }, 12, "timestamp"},
		{"producer", func(rs []*kgo.Record) []*kgo.Record { rs[1].ProducerEpoch = 1; return rs }, 11, "producer"},
		{"missing", func(rs []*kgo.Record) []*kgo.Record { return append(rs[:1], rs[2:]...) }, 11, "the cluster has a record here"},
		{"extra", func(rs []*kgo.Record) []*kgo.Record {
			return append(rs, &kgo.Record{Offset: 13, Timestamp: time.UnixMilli(1000)})
		}, 13, "the repository has a record here"},
		{"truncated", func(rs []*kgo.Record) []*kgo.Record { return rs[:1] }, 11, "lacks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := crosscheck.Compare("t", 3, tc.change(base()), base())
			var d *crosscheck.DiffError
			if !errors.As(err, &d) {
				t.Fatalf("got %v, want a *DiffError", err)
			}
			if d.Topic != "t" || d.Partition != 3 || d.Offset != tc.offset || !strings.Contains(d.What, tc.what) {
				t.Fatalf("got %v; want t/3 at offset %d: %s…", err, tc.offset, tc.what)
			}
		})
	}
}

// Backup passes on a faithful backup with transactions, every codec, a
// gap and an empty partition; it fails, naming the place, when the
// cluster has a record the backup lacks, and when a segment is damaged.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Topics(3, "t"))
	for i, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		c.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "t", int32(i%2),
			&kgo.Record{Key: []byte("k"), Value: []byte(strings.Repeat("v", i*100))}, &kgo.Record{Value: nil})
	}
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "t", 0, &kgo.Record{Value: []byte("committed")})
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "t", 0, &kgo.Record{Value: []byte("aborted")})
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tp1 := client.TopicPartition{Topic: "t", Partition: 1}
	if res := cl.DeleteRecords(ctx, map[client.TopicPartition]int64{tp1: 2}); res[tp1].Err != nil {
		t.Fatal(res[tp1].Err)
	}
	dir := t.TempDir()
	st, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := backup.Run(ctx, cl, r, backup.Options{SkipGroups: true, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	cc := crosscheck.NewCluster(c.Client(t))
	res, err := crosscheck.Backup(ctx, cc, st, m)
	if err != nil {
		t.Fatalf("faithful backup: %v", err)
	}
	// t/0: 3 batches of 2, committed, aborted; t/1: 2 batches of 2, the
	// first deleted; t/2 empty. Markers: one commit, one abort.
	if want := (crosscheck.Result{Partitions: 3, Records: 6 + 2 + 2, Control: 2}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}

	// A record the backup lacks.
	c.Produce(t, "t", 2, &kgo.Record{Value: []byte("late")})
	m.Topics[0].Partitions[2].To++
	_, err = crosscheck.Backup(ctx, cc, st, m)
	var d *crosscheck.DiffError
	if !errors.As(err, &d) || d.Partition != 2 || d.Offset != 0 {
		t.Fatalf("a record missing from the backup: got %v, want a difference at t/2 offset 0", err)
	}
	m.Topics[0].Partitions[2].To--

	// A damaged byte in the middle of a stored batch (no framing, so the
	// batch's CRC-32C is what catches it).
	ref := m.Topics[0].Partitions[0].Segments[0]
	path := filepath.Join(dir, filepath.FromSlash(ref.Key))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = crosscheck.Backup(ctx, cc, st, m)
	if err == nil || !strings.Contains(err.Error(), "t/0") || !strings.Contains(err.Error(), ref.Key) {
		t.Fatalf("damaged segment: got %v, want an error naming t/0 and %s", err, ref.Key)
	}
}
