package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktape/ktape/internal/testfixtures"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func capture(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "comma-separated bootstrap brokers")
	out := fs.String("out", ".", "directory to write <topic>.p<N>.bin and <topic>.json to")
	writer := fs.String("writer", "", "who wrote the batches (client, version, settings), stored in the JSON")
	notes := fs.String("notes", "", "notes stored in the JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *writer == "" || fs.NArg() == 0 {
		return errors.New("need -writer and at least one topic")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(splitBrokers(*brokers)...))
	if err != nil {
		return err
	}
	defer cl.Close()

	for _, topic := range fs.Args() {
		f, err := captureTopic(ctx, cl, splitBrokers(*brokers), topic)
		if err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
		f.Writer, f.Notes = *writer, *notes
		for _, p := range f.Partitions {
			if err := os.WriteFile(filepath.Join(*out, p.File), p.Raw, 0o644); err != nil {
				return err
			}
		}
		js, err := testfixtures.Marshal(&f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, f.Name+".json"), js, 0o644); err != nil {
			return err
		}
		nrec := 0
		for _, p := range f.Partitions {
			nrec += len(p.Records())
		}
		fmt.Printf("captured %s: %d partition(s), %d records\n", topic, len(f.Partitions), nrec)
	}
	return nil
}

type partitionMeta struct {
	id     int32
	leader int32
}

func captureTopic(ctx context.Context, cl *kgo.Client, seeds []string, topic string) (testfixtures.Fixture, error) {
	f := testfixtures.Fixture{Name: topic, Topic: topic, Magic: 2}

	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return f, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 {
		return f, fmt.Errorf("metadata: %d topics in response", len(mresp.Topics))
	}
	t := mresp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return f, fmt.Errorf("metadata: %w", err)
	}
	var parts []partitionMeta
	for _, p := range t.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return f, fmt.Errorf("metadata partition %d: %w", p.Partition, err)
		}
		parts = append(parts, partitionMeta{p.Partition, p.Leader})
	}
	slices.SortFunc(parts, func(a, b partitionMeta) int { return int(a.id - b.id) })

	for _, pm := range parts {
		p, err := capturePartition(ctx, cl, topic, t.TopicID, pm)
		if err != nil {
			return f, fmt.Errorf("partition %d: %w", pm.id, err)
		}
		p.File = fmt.Sprintf("%s.p%d.bin", topic, pm.id)
		f.Partitions = append(f.Partitions, p)
	}

	// The expected records come from a real consumer: kgo, reading the
	// topic over the network.
	consumed, err := consume(ctx, seeds, topic, &f)
	if err != nil {
		return f, err
	}
	for i := range f.Partitions {
		p := &f.Partitions[i]
		if err := attachRecords(p, consumed[p.Partition]); err != nil {
			return f, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		// Cross-check: kgo's decoder applied to the captured bytes gives
		// the same records as the consumer saw.
		if err := crossCheck(topic, p); err != nil {
			return f, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
	}
	return f, nil
}

// fetch sends one Fetch request for a single partition to its leader.
func fetch(ctx context.Context, cl *kgo.Client, topic string, topicID [16]byte, pm partitionMeta, offset int64, isolation int8) (*kmsg.FetchResponseTopicPartition, int16, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 100
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	req.IsolationLevel = isolation
	req.SessionID = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic     // Fetch v0-v12
	rt.TopicID = topicID // Fetch v13+
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = pm.id
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 64 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	resp, err := req.RequestWith(ctx, cl.Broker(int(pm.leader)))
	if err != nil {
		return nil, 0, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, 0, err
	}
	for i := range resp.Topics {
		st := &resp.Topics[i]
		if st.Topic != topic && st.TopicID != topicID {
			continue
		}
		for j := range st.Partitions {
			sp := &st.Partitions[j]
			if sp.Partition != pm.id {
				continue
			}
			if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
				return nil, 0, err
			}
			return sp, resp.Version, nil
		}
	}
	return nil, 0, errors.New("fetch response lacks the partition")
}

func capturePartition(ctx context.Context, cl *kgo.Client, topic string, topicID [16]byte, pm partitionMeta) (testfixtures.Partition, error) {
	p := testfixtures.Partition{Partition: pm.id, AbortedTransactions: []testfixtures.AbortedTransaction{}}

	// One fetch normally returns the whole partition; keep fetching from
	// after the last whole batch until the high watermark. Each response
	// must end on a batch boundary, so the file is the concatenation of
	// the RecordBatches fields exactly as the broker returned them.
	var raw []byte
	offset := int64(0)
	for first := true; ; first = false {
		sp, _, err := fetch(ctx, cl, topic, topicID, pm, offset, 0)
		if err != nil {
			return p, fmt.Errorf("fetch at %d: %w", offset, err)
		}
		if first {
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset
		}
		if offset >= sp.HighWatermark {
			break
		}
		next, whole := offset, 0
		for rest := sp.RecordBatches; len(rest) >= 12; {
			n := 12 + int(int32(binary.BigEndian.Uint32(rest[8:])))
			if n < 12 || n > len(rest) {
				break
			}
			var b kmsg.RecordBatch
			if err := b.ReadFrom(rest[:n]); err != nil {
				return p, fmt.Errorf("batch at %d: %w", len(raw)+whole, err)
			}
			next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
			whole += n
			rest = rest[n:]
		}
		if whole != len(sp.RecordBatches) {
			return p, fmt.Errorf("fetch at %d: response ends with %d bytes of a partial batch", offset, len(sp.RecordBatches)-whole)
		}
		if next == offset {
			return p, fmt.Errorf("fetch at %d: no progress (high watermark %d)", offset, sp.HighWatermark)
		}
		raw = append(raw, sp.RecordBatches...)
		offset = next
		if offset >= p.HighWatermark {
			break
		}
	}
	p.Raw = raw
	p.Size = len(raw)
	sum := sha256.Sum256(raw)
	p.SHA256 = hex.EncodeToString(sum[:])

	// Aborted transactions are only reported to READ_COMMITTED fetches.
	sp, _, err := fetch(ctx, cl, topic, topicID, pm, 0, 1)
	if err != nil {
		return p, fmt.Errorf("read-committed fetch: %w", err)
	}
	for _, a := range sp.AbortedTransactions {
		p.AbortedTransactions = append(p.AbortedTransactions, testfixtures.AbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
	}

	// Batch headers, with franz-go's kmsg.RecordBatch.
	for pos := 0; pos < len(raw); {
		n := 12 + int(int32(binary.BigEndian.Uint32(raw[pos+8:])))
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw[pos : pos+n]); err != nil {
			return p, err
		}
		if b.Magic != 2 {
			return p, fmt.Errorf("batch at byte %d has magic %d", pos, b.Magic)
		}
		if got := crc32.Checksum(raw[pos+21:pos+n], castagnoli); got != uint32(b.CRC) {
			return p, fmt.Errorf("batch at byte %d: CRC-32C %08x, stored %08x", pos, got, uint32(b.CRC))
		}
		codec := int(b.Attributes & 7)
		if codec >= len(testfixtures.Codecs) {
			return p, fmt.Errorf("batch at byte %d: codec %d", pos, codec)
		}
		tsType := "create"
		if b.Attributes&8 != 0 {
			tsType = "log_append"
		}
		p.Batches = append(p.Batches, testfixtures.Batch{
			Position:             pos,
			Size:                 n,
			BaseOffset:           b.FirstOffset,
			LastOffset:           b.FirstOffset + int64(b.LastOffsetDelta),
			PartitionLeaderEpoch: b.PartitionLeaderEpoch,
			Magic:                b.Magic,
			CRC:                  uint32(b.CRC),
			Codec:                testfixtures.Codecs[codec],
			TimestampType:        tsType,
			Transactional:        b.Attributes&0x10 != 0,
			Control:              b.Attributes&0x20 != 0,
			ProducerID:           b.ProducerID,
			ProducerEpoch:        b.ProducerEpoch,
			BaseSequence:         b.FirstSequence,
			RecordCount:          b.NumRecords,
			FirstTimestamp:       b.FirstTimestamp,
			MaxTimestamp:         b.MaxTimestamp,
			Records:              []testfixtures.Record{},
		})
		pos += n
	}
	return p, nil
}

// consume reads every record of the topic, control records included, with a
// kgo consumer at READ_UNCOMMITTED.
func consume(ctx context.Context, seeds []string, topic string, f *testfixtures.Fixture) (map[int32][]*kgo.Record, error) {
	offsets := map[int32]kgo.Offset{}
	want := map[int32]int{}
	total := 0
	for _, p := range f.Partitions {
		offsets[p.Partition] = kgo.NewOffset().At(0)
		for _, b := range p.Batches {
			want[p.Partition] += int(b.RecordCount)
			total += int(b.RecordCount)
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	got := map[int32][]*kgo.Record{}
	n := 0
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for n < total {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("consumed %d of %d records: %w", n, total, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("consume %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return nil, ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			n++
		})
	}
	for p, w := range want {
		if len(got[p]) != w {
			return nil, fmt.Errorf("partition %d: consumed %d records, batches hold %d", p, len(got[p]), w)
		}
	}
	return got, nil
}

func toRecord(r *kgo.Record) testfixtures.Record {
	out := testfixtures.Record{
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Key:       r.Key,
		Value:     r.Value,
		Headers:   []testfixtures.Header{},
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, testfixtures.Header{Key: h.Key, Value: h.Value})
	}
	return out
}

// attachRecords puts each consumed record into its batch, checks that the
// consumer's view of each batch agrees with its header, and fills in
// control types and transaction outcomes.
func attachRecords(p *testfixtures.Partition, rs []*kgo.Record) error {
	bi := 0
	for _, r := range rs {
		for bi < len(p.Batches) && r.Offset > p.Batches[bi].LastOffset {
			bi++
		}
		if bi == len(p.Batches) || r.Offset < p.Batches[bi].BaseOffset {
			return fmt.Errorf("consumed offset %d is in no batch", r.Offset)
		}
		b := &p.Batches[bi]
		if n := len(b.Records); n > 0 && b.Records[n-1].Offset >= r.Offset {
			return fmt.Errorf("consumed offset %d after %d", r.Offset, b.Records[n-1].Offset)
		}
		if r.Attrs.IsControl() != b.Control || r.Attrs.IsTransactional() != b.Transactional ||
			testfixtures.Codecs[r.Attrs.CompressionType()] != b.Codec ||
			r.ProducerID != b.ProducerID || r.ProducerEpoch != b.ProducerEpoch || r.LeaderEpoch != b.PartitionLeaderEpoch {
			return fmt.Errorf("record at offset %d: consumer's attributes disagree with its batch header", r.Offset)
		}
		b.Records = append(b.Records, toRecord(r))
	}
	for i := range p.Batches {
		b := &p.Batches[i]
		if len(b.Records) != int(b.RecordCount) {
			return fmt.Errorf("batch at offset %d: %d records consumed, header says %d", b.BaseOffset, len(b.Records), b.RecordCount)
		}
		if b.Control {
			if len(b.Records) != 1 {
				return fmt.Errorf("control batch at offset %d has %d records", b.BaseOffset, len(b.Records))
			}
			key := b.Records[0].Key
			if len(key) < 4 {
				return fmt.Errorf("control batch at offset %d: key of %d bytes", b.BaseOffset, len(key))
			}
			switch typ := int16(binary.BigEndian.Uint16(key[2:])); typ {
			case 0:
				b.ControlType = "abort"
			case 1:
				b.ControlType = "commit"
			default:
				b.ControlType = fmt.Sprintf("type-%d", typ)
			}
		}
	}
	// A transactional data batch belongs to the transaction that the next
	// control batch of the same producer ends.
	for i := range p.Batches {
		b := &p.Batches[i]
		if !b.Transactional || b.Control {
			continue
		}
		b.TxnResult = "open"
		for _, c := range p.Batches[i+1:] {
			if c.Control && c.ProducerID == b.ProducerID {
				switch c.ControlType {
				case "commit":
					b.TxnResult = "committed"
				case "abort":
					b.TxnResult = "aborted"
				}
				break
			}
		}
	}
	return nil
}

// crossCheck decodes the captured bytes with kgo.ProcessFetchPartition and
// compares the result with the records the consumer returned.
func crossCheck(topic string, p *testfixtures.Partition) error {
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.Partition = p.Partition
	rp.HighWatermark = p.HighWatermark
	rp.LastStableOffset = p.LastStableOffset
	rp.RecordBatches = p.Raw
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		KeepControlRecords: true,
		Topic:              topic,
		Partition:          p.Partition,
		IsolationLevel:     kgo.ReadUncommitted(),
	}, &rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return fmt.Errorf("decoding captured bytes: %w", fp.Err)
	}
	want := p.Records()
	if len(fp.Records) != len(want) {
		return fmt.Errorf("captured bytes decode to %d records, consumer saw %d", len(fp.Records), len(want))
	}
	for i, r := range fp.Records {
		if err := sameRecord(toRecord(r), want[i]); err != nil {
			return fmt.Errorf("captured bytes vs consumer: %w", err)
		}
	}
	return nil
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func sameRecord(a, b testfixtures.Record) error {
	if a.Offset != b.Offset || a.Timestamp != b.Timestamp || !sameBytes(a.Key, b.Key) || !sameBytes(a.Value, b.Value) || len(a.Headers) != len(b.Headers) {
		return fmt.Errorf("record at offset %d differs: %+v vs %+v", b.Offset, a, b)
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !sameBytes(a.Headers[i].Value, b.Headers[i].Value) {
			return fmt.Errorf("record at offset %d: header %d differs", b.Offset, i)
		}
	}
	return nil
}
