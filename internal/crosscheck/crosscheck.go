// Package crosscheck judges a backup by an implementation independent of
// ktape's: it decodes the batches a repository holds with franz-go's
// decoder (kgo.ProcessFetchPartition, what kgo's consumer uses), reads
// the same offsets from the cluster with franz-go, and compares the two
// record by record. Only the repository's own framing (segments and
// their indexes) is undone by package repo, since franz-go knows nothing
// of it; the batches inside are franz-go's to judge.
//
// It is shared by the tests (internal/repotest, internal/kfaketest) and
// by ktape demo, so it reports through errors, never testing.TB. It
// holds one partition's records from both sides in memory at a time:
// it is meant for test and demo data, not production-sized backups.
package crosscheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DiffError is the first difference between a partition's records in the
// repository and in the cluster.
type DiffError struct {
	Topic     string
	Partition int32
	Offset    int64
	What      string // what differs, both sides' values when short
}

func (e *DiffError) Error() string {
	return fmt.Sprintf("crosscheck: %s/%d at offset %d: %s", e.Topic, e.Partition, e.Offset, e.What)
}

// Result counts what Backup compared.
type Result struct {
	Partitions int
	Records    int64 // data records, aborted ones included
	Control    int64 // control records (transaction markers)
}

// Range is the part of a backed-up partition that both sides still hold:
// from the later of the backup's start and the log start it saw, to its
// end. Offsets below the log start were deleted before the backup read
// them (a gap, which verify --deep accounts for).
func Range(p *repo.Partition) (from, to int64) { return max(p.From, p.LogStart), p.To }

// Backup compares every partition of the backup m, stored in st, with the
// cluster: in each partition's Range, the records franz-go decodes from
// the repository must be those it reads from the cluster as a
// read_uncommitted consumer, control records included, equal in offset,
// key, value, headers, timestamp, attributes and producer. It returns
// what it compared and the first difference, a *DiffError, or the first
// error reading either side, naming topic and partition.
func Backup(ctx context.Context, c *Cluster, st *storage.Store, m *repo.Manifest) (Result, error) {
	var res Result
	for _, t := range m.Topics {
		ct, err := c.Topic(ctx, t.Name)
		if err != nil {
			return res, err
		}
		for i := range t.Partitions {
			p := &t.Partitions[i]
			from, to := Range(p)
			stored, err := RepositoryRecords(ctx, st, t.Name, p)
			if err != nil {
				return res, err
			}
			live, err := c.Records(ctx, ct, p.Partition, from, to, ReadOptions{Control: true})
			if err != nil {
				return res, err
			}
			if err := Compare(t.Name, p.Partition, stored, live); err != nil {
				return res, err
			}
			res.Partitions++
			for _, r := range live {
				if r.Attrs.IsControl() {
					res.Control++
				} else {
					res.Records++
				}
			}
		}
	}
	return res, nil
}

// RepositoryRecords returns the records of partition p of topic in its
// Range, control records included, read from its segments in st and
// decoded by franz-go. Each segment's batches are handed to
// kgo.ProcessFetchPartition as if a broker had sent them. It fails on a
// segment that cannot be read, a batch franz-go refuses (a bad CRC), and
// an offset met twice or out of order.
func RepositoryRecords(ctx context.Context, st *storage.Store, topic string, p *repo.Partition) ([]*kgo.Record, error) {
	from, to := Range(p)
	d := &record.Decompressor{}
	var out []*kgo.Record
	next := int64(-1) // every later record's offset must be at least this
	for _, ref := range p.Segments {
		where := fmt.Sprintf("crosscheck: %s/%d: segment %s", topic, p.Partition, ref.Key)
		set, err := segmentBatches(ctx, st, ref, d, where)
		if err != nil {
			return nil, err
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = p.Partition
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset, rp.RecordBatches = p.To, p.To, p.LogStart, set
		fp, last := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Topic:              topic,
			Partition:          p.Partition,
			Offset:             from,
			IsolationLevel:     kgo.ReadUncommitted(),
			KeepControlRecords: true,
		}, &rp, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return nil, fmt.Errorf("%s: franz-go cannot decode its batches (read up to offset %d): %w", where, last, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset < next {
				return nil, fmt.Errorf("%s: offset %d after offset %d: the repository holds it twice or out of order", where, r.Offset, next-1)
			}
			next = r.Offset + 1
			if r.Offset < to {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// RepositoryBatches returns the batches of partition p of topic, as the
// repository holds them (after its framing is undone), concatenated in
// offset order: two backups of the same data hold the same bytes, however
// their segments are cut.
func RepositoryBatches(ctx context.Context, st *storage.Store, topic string, p *repo.Partition) ([]byte, error) {
	d := &record.Decompressor{}
	var out []byte
	for _, ref := range p.Segments {
		set, err := segmentBatches(ctx, st, ref, d, fmt.Sprintf("crosscheck: %s/%d: segment %s", topic, p.Partition, ref.Key))
		if err != nil {
			return nil, err
		}
		out = append(out, set...)
	}
	return out, nil
}

// segmentBatches reads the segment ref names and returns its batches,
// concatenated; where says which it is in errors.
func segmentBatches(ctx context.Context, st *storage.Store, ref repo.SegmentRef, d *record.Decompressor, where string) ([]byte, error) {
	stored, err := st.Get(ctx, ref.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	idx, err := st.Get(ctx, repo.IndexKey(ref.Key))
	if err != nil {
		return nil, fmt.Errorf("%s: index: %w", where, err)
	}
	seg, err := repo.ParseIndex(idx)
	if err != nil {
		return nil, fmt.Errorf("%s: index: %w", where, err)
	}
	var set []byte
	if err := seg.Batches(stored, d, func(_ repo.IndexEntry, b record.Batch) error {
		set = append(set, b...)
		return nil
	}); err != nil {
		var ce *repo.CorruptError
		if errors.As(err, &ce) && ce.Batch >= 0 && ce.Batch < len(seg.Entries) {
			where += fmt.Sprintf(", the batch at offset %d", seg.Entries[ce.Batch].BaseOffset)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return set, nil
}

// Compare compares a partition's records from the repository (stored)
// with the cluster's (live), both in offset order, and returns the first
// difference as a *DiffError, or nil.
func Compare(topic string, partition int32, stored, live []*kgo.Record) error {
	diff := func(off int64, format string, args ...any) error {
		return &DiffError{Topic: topic, Partition: partition, Offset: off, What: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < max(len(stored), len(live)); i++ {
		switch {
		case i == len(stored):
			return diff(live[i].Offset, "the cluster has a record here (and %d more after it) that the repository lacks", len(live)-i-1)
		case i == len(live):
			return diff(stored[i].Offset, "the repository has a record here (and %d more after it) that the cluster lacks", len(stored)-i-1)
		}
		s, l := stored[i], live[i]
		if s.Offset != l.Offset {
			off := min(s.Offset, l.Offset)
			if s.Offset < l.Offset {
				return diff(off, "the repository has a record here, the cluster's next is at offset %d", l.Offset)
			}
			return diff(off, "the cluster has a record here, the repository's next is at offset %d", s.Offset)
		}
		if what := recordDiff(s, l); what != "" {
			return diff(s.Offset, "%s", what)
		}
	}
	return nil
}

// recordDiff names the first field in which the repository's record s
// and the cluster's l differ, or returns "".
func recordDiff(s, l *kgo.Record) string {
	switch {
	case !sameBytes(s.Key, l.Key):
		return "key: repository " + show(s.Key) + ", cluster " + show(l.Key)
	case !sameBytes(s.Value, l.Value):
		return "value: repository " + show(s.Value) + ", cluster " + show(l.Value)
	case len(s.Headers) != len(l.Headers):
		return fmt.Sprintf("headers: repository %d, cluster %d", len(s.Headers), len(l.Headers))
	case !s.Timestamp.Equal(l.Timestamp):
		return fmt.Sprintf("timestamp: repository %d, cluster %d (ms)", s.Timestamp.UnixMilli(), l.Timestamp.UnixMilli())
	case s.Attrs != l.Attrs:
		return fmt.Sprintf("attributes: repository %+v, cluster %+v", s.Attrs, l.Attrs)
	case s.ProducerID != l.ProducerID || s.ProducerEpoch != l.ProducerEpoch:
		return fmt.Sprintf("producer: repository %d epoch %d, cluster %d epoch %d", s.ProducerID, s.ProducerEpoch, l.ProducerID, l.ProducerEpoch)
	case s.LeaderEpoch != l.LeaderEpoch:
		return fmt.Sprintf("leader epoch: repository %d, cluster %d", s.LeaderEpoch, l.LeaderEpoch)
	}
	for i, sh := range s.Headers {
		lh := l.Headers[i]
		if sh.Key != lh.Key || !sameBytes(sh.Value, lh.Value) {
			return fmt.Sprintf("header %d: repository %q=%s, cluster %q=%s", i, sh.Key, show(sh.Value), lh.Key, show(lh.Value))
		}
	}
	return ""
}

// sameBytes is bytes.Equal that also tells null from empty: a null value
// is a tombstone, an empty one is not.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// show renders bytes for a message: null, or their length and a prefix.
func show(b []byte) string {
	if b == nil {
		return "null"
	}
	const n = 16
	if len(b) <= n {
		return fmt.Sprintf("%d bytes %q", len(b), b)
	}
	return fmt.Sprintf("%d bytes %q…", len(b), b[:n])
}
