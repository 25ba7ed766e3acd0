package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
)

// serve generates a topic and serves it on a loopback port until the test
// ends; it fails the test if the server logged an error.
func serve(t *testing.T, tc TopicConfig) (*Server, string) {
	t.Helper()
	top, err := Generate(tc)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	s, err := NewServer(top, ServerConfig{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if logs.Len() > 0 {
			t.Errorf("server log:\n%s", logs.String())
		}
	})
	return s, ln.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGenerate(t *testing.T) {
	for _, codec := range []record.Codec{record.None, record.LZ4} {
		top, err := Generate(TopicConfig{Partitions: 3, Bytes: 2 << 20, BatchBytes: 16 << 10, PoolBytes: 256 << 10, Codec: codec})
		if err != nil {
			t.Fatal(err)
		}
		records, batches, size := top.Totals()
		if size < 2<<20 || records != batches*top.RecordsPerBatch() {
			t.Fatalf("%v: totals %d records, %d batches, %d bytes", codec, records, batches, size)
		}
		key, value := make([]byte, DefaultKeyBytes), make([]byte, DefaultValueBytes)
		for p := range top.NumPartitions() {
			var sum int64
			for i := range top.NumBatches(p) {
				b, err := record.Parse(top.AppendBatch(nil, p, i))
				if err != nil {
					t.Fatalf("%v: partition %d batch %d: %v", codec, p, i, err)
				}
				if b.BaseOffset() != int64(i)*top.RecordsPerBatch() || int64(b.NumRecords()) != top.RecordsPerBatch() || b.Codec() != codec {
					t.Fatalf("%v: partition %d batch %d: base %d, %d records, %v", codec, p, i, b.BaseOffset(), b.NumRecords(), b.Codec())
				}
				sum += int64(len(b))
				if i == 0 {
					top.Record(p, 0, key, value)
					if !bytes.Contains(value, []byte("=")) {
						t.Fatalf("value does not look like a log line: %q", value)
					}
				}
			}
			if sum != top.PartitionBytes(p) {
				t.Fatalf("%v: partition %d: batches add up to %d bytes, PartitionBytes says %d", codec, p, sum, top.PartitionBytes(p))
			}
		}
	}
	if _, err := Generate(TopicConfig{}); err == nil {
		t.Fatal("a topic of 0 bytes was generated")
	}
}

// TestFetchSpliceIsEngineEncoding checks the vectored Fetch response at
// every served version against the protocol engine: decoded, re-encoded
// in one piece, it must come out byte for byte the same, and its records
// must be the topic's batches with their base offsets.
func TestFetchSpliceIsEngineEncoding(t *testing.T) {
	top, err := Generate(TopicConfig{Partitions: 3, Bytes: 1 << 20, BatchBytes: 8 << 10, Codec: record.LZ4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(top, ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for ver := int16(4); ver <= api.Fetch.MaxVersion; ver++ {
		req := protocol.NewRecord(api.Fetch.Request).SetName("MaxWaitMs", int32(100)).SetName("MinBytes", int32(1)).
			SetName("MaxBytes", int32(100<<10)).SetName("SessionEpoch", int32(-1))
		tr := req.Append(api.Fetch.Request.Handle("Topics")).SetName("Topic", top.Name()).SetName("TopicId", top.ID())
		offsets := []int64{0, top.HighWatermark(1) / 2, top.HighWatermark(2)}
		for p, off := range offsets {
			tr.Append(tr.Schema().Handle("Partitions")).SetName("Partition", int32(p)).SetName("FetchOffset", off).SetName("PartitionMaxBytes", int32(30<<10))
		}
		body, err := req.AppendTo(nil, ver)
		if err != nil {
			t.Fatal(err)
		}
		h := protocol.RequestHeader{APIKey: api.Fetch.Key, APIVersion: ver, CorrelationID: 7, ClientID: []byte("test")}
		frame := append(h.AppendTo(nil, api.Fetch.RequestHeaderVersion(ver)), body...)
		c := &conn{}
		if err := s.dispatch(c, frame); err != nil {
			t.Fatalf("v%d: %v", ver, err)
		}
		var wire []byte
		for _, b := range c.bufs {
			wire = append(wire, b...)
		}
		if n := int(binary.BigEndian.Uint32(wire)); n != len(wire)-4 {
			t.Fatalf("v%d: size prefix %d, frame %d bytes", ver, n, len(wire)-4)
		}
		corr, rbody, err := protocol.ParseResponseHeader(wire[4:], api.Fetch.ResponseHeaderVersion(ver))
		if err != nil || corr != 7 {
			t.Fatalf("v%d: header: corr %d, %v", ver, corr, err)
		}
		var d protocol.Decoder
		view, err := d.Decode(api.Fetch.Response, ver, rbody)
		if err != nil {
			t.Fatalf("v%d: the spliced response does not decode: %v", ver, err)
		}
		again, err := protocol.AppendResponse(nil, view.Record(), ver, 7)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, wire) {
			t.Fatalf("v%d: the engine encodes the decoded response differently (%d bytes, spliced %d)", ver, len(again), len(wire))
		}
		resp, err := api.DecodeFetchResponse(&d, ver, rbody)
		if err != nil {
			t.Fatal(err)
		}
		parts := resp.Topics().At(0).Partitions()
		if parts.Len() != 3 {
			t.Fatalf("v%d: %d partitions", ver, parts.Len())
		}
		total := 0
		for p := range 3 {
			fp := parts.At(p)
			recs := fp.Records()
			if fp.ErrorCode() != 0 || fp.HighWatermark() != top.HighWatermark(p) {
				t.Fatalf("v%d partition %d: error %d, high watermark %d", ver, p, fp.ErrorCode(), fp.HighWatermark())
			}
			var want []byte
			first := int(offsets[p] / top.RecordsPerBatch())
			for i := first; len(want) < len(recs); i++ {
				want = top.AppendBatch(want, p, i)
			}
			if !bytes.Equal(recs, want) {
				t.Fatalf("v%d partition %d: records are not the topic's batches from %d", ver, p, first)
			}
			if p < 2 && (len(recs) == 0 || len(recs) > 30<<10) {
				t.Fatalf("v%d partition %d: %d bytes of records for a partition limit of 30 KiB", ver, p, len(recs))
			}
			if p == 2 && len(recs) != 0 {
				t.Fatalf("v%d: %d bytes at the high watermark", ver, len(recs))
			}
			total += len(recs)
		}
		if total > 100<<10 {
			t.Fatalf("v%d: %d bytes of records for a limit of 100 KiB", ver, total)
		}
	}
}

// TestFetchLimits: the first batch goes out even if it is larger than the
// limits (KIP-74); after it, only whole batches within both.
func TestFetchLimits(t *testing.T) {
	s, addr := serve(t, TopicConfig{Partitions: 2, Bytes: 1 << 20, BatchBytes: 16 << 10})
	top := s.Topic()
	ctx := ctxFor(t)
	cl, err := client.New(ctx, []string{addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tc := range []struct {
		maxBytes, partMax int32
		want              [2]int // batches per partition
	}{
		{1, 1, [2]int{1, 0}},
		{1 << 20, 1, [2]int{1, 0}},
		{1 << 20, 40 << 10, [2]int{2, 2}},
		{40 << 10, 1 << 20, [2]int{2, 0}},
	} {
		f := client.NewFetcher(cl, client.FetchConfig{MaxBytes: tc.maxBytes, PartitionMaxBytes: tc.partMax})
		f.Assign(client.TopicPartition{Topic: top.Name(), Partition: 0}, 0)
		f.Assign(client.TopicPartition{Topic: top.Name(), Partition: 1}, 0)
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got [2]int
		for _, fp := range fe.Partitions {
			it := record.NewIter(fp.Records)
			for it.Next() {
				got[fp.Partition]++
			}
		}
		fe.Release()
		f.Close()
		// The fetcher orders partitions itself: compare the counts as
		// a multiset.
		if got != tc.want && got != [2]int{tc.want[1], tc.want[0]} {
			t.Errorf("MaxBytes %d, PartitionMaxBytes %d: batches %v, want %v", tc.maxBytes, tc.partMax, got, tc.want)
		}
	}
}

// TestKgoReadsEveryRecord consumes whole topics with franz-go and checks
// every record against the generator.
func TestKgoReadsEveryRecord(t *testing.T) {
	for _, codec := range []record.Codec{record.None, record.LZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			// A pool smaller than the topic: batches are reused with new
			// base offsets.
			s, addr := serve(t, TopicConfig{Partitions: 3, Bytes: 3 << 20, BatchBytes: 16 << 10, PoolBytes: 512 << 10, Codec: codec})
			top := s.Topic()
			if top.PoolBatches() >= int(top.Info().Batches) {
				t.Fatalf("pool of %d batches for %d: nothing is reused", top.PoolBatches(), top.Info().Batches)
			}
			parts := map[int32]kgo.Offset{}
			for p := range top.NumPartitions() {
				parts[int32(p)] = kgo.NewOffset().AtStart()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{top.Name(): parts}))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx := ctxFor(t)
			next := make([]int64, top.NumPartitions())
			key, value := make([]byte, DefaultKeyBytes), make([]byte, DefaultValueBytes)
			want := top.Info().Records
			var got int64
			for got < want {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("kgo read %d of %d records: %v", got, want, err)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if r.Offset != next[r.Partition] {
						t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, next[r.Partition]-1)
					}
					next[r.Partition]++
					top.Record(int(r.Partition), r.Offset, key, value)
					if !bytes.Equal(r.Key, key) || !bytes.Equal(r.Value, value) {
						t.Fatalf("partition %d offset %d: key %x value %.40q..., want %x %.40q...", r.Partition, r.Offset, r.Key, r.Value, key, value)
					}
					got++
				})
			}
			for p := range next {
				if next[p] != top.HighWatermark(p) {
					t.Errorf("partition %d: read to %d, high watermark %d", p, next[p], top.HighWatermark(p))
				}
			}
		})
	}
}

// TestKtapeClient reads the topic with ktape's Fetcher (which checks every
// CRC) and makes the admin calls ktape backup makes.
func TestKtapeClient(t *testing.T) {
	s, addr := serve(t, TopicConfig{Partitions: 4, Bytes: 2 << 20, BatchBytes: 32 << 10, PoolBytes: 256 << 10, Codec: record.LZ4})
	top := s.Topic()
	ctx := ctxFor(t)
	cl, err := client.New(ctx, []string{addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := cl.RefreshMetadata(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tm := md.Topics[top.Name()]; tm == nil || len(tm.Partitions) != 4 || tm.ID != top.ID() || len(md.Topics) != 1 {
		t.Fatalf("metadata: %+v", md.Topics)
	}
	ends, starts := map[client.TopicPartition]int64{}, map[client.TopicPartition]int64{}
	for p := range 4 {
		tp := client.TopicPartition{Topic: top.Name(), Partition: int32(p)}
		ends[tp], starts[tp] = client.Latest, client.Earliest
	}
	latest, err := cl.ListOffsets(ctx, client.ReadUncommitted, ends)
	if err != nil {
		t.Fatal(err)
	}
	earliest, err := cl.ListOffsets(ctx, client.ReadUncommitted, starts)
	if err != nil {
		t.Fatal(err)
	}
	for tp := range ends {
		if latest[tp].Err != nil || earliest[tp].Err != nil || latest[tp].Offset != top.HighWatermark(int(tp.Partition)) || earliest[tp].Offset != 0 {
			t.Fatalf("%s: offsets %+v to %+v", tp, earliest[tp], latest[tp])
		}
	}
	cfgs, err := cl.DescribeTopicConfigs(ctx, []string{top.Name()})
	if err != nil || len(cfgs[top.Name()]) != 0 {
		t.Fatalf("topic configs: %v, %v", cfgs, err)
	}
	if info, err := cl.DescribeCluster(ctx); err != nil || info.ClusterID != clusterID {
		t.Fatalf("describe cluster: %+v, %v", info, err)
	}
	if groups, err := cl.ListGroups(ctx); err != nil || len(groups) != 0 {
		t.Fatalf("groups: %v, %v", groups, err)
	}
	if offs, err := cl.FetchGroupOffsets(ctx, []string{"g"}); err != nil || len(offs["g"]) != 0 {
		t.Fatalf("group offsets: %v, %v", offs, err)
	}

	f := client.NewFetcher(cl, client.FetchConfig{})
	defer f.Close()
	for tp := range ends {
		f.Assign(tp, 0)
	}
	var bytesSeen, batches int64
	next := make([]int64, 4)
	for left := 4; left > 0; {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				t.Fatalf("%s: %v", fp.TopicPartition, fp.Err)
			}
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if b.BaseOffset() != next[fp.Partition] {
					t.Fatalf("%s: batch at %d after %d", fp.TopicPartition, b.BaseOffset(), next[fp.Partition])
				}
				next[fp.Partition] = b.LastOffset() + 1
				bytesSeen += int64(len(b))
				batches++
			}
			if len(fp.Records) > 0 && fp.NextOffset == top.HighWatermark(int(fp.Partition)) {
				f.Unassign(fp.TopicPartition)
				left--
			}
		}
		fe.Release()
	}
	info := top.Info()
	if bytesSeen != info.Bytes || batches != info.Batches {
		t.Fatalf("fetched %d batches, %d bytes; the topic has %d, %d", batches, bytesSeen, info.Batches, info.Bytes)
	}
	if st := s.Stats(); st.Bytes < info.Bytes || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUnknownTopicAndOffsets: errors a client can act on, not closed
// connections.
func TestUnknownTopicAndOffsets(t *testing.T) {
	s, addr := serve(t, TopicConfig{Partitions: 1, Bytes: 256 << 10})
	top := s.Topic()
	ctx := ctxFor(t)
	cl, err := client.New(ctx, []string{addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := cl.RefreshMetadata(ctx, []string{"missing", top.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if md.Topics["missing"] == nil || !errors.Is(md.Topics["missing"].Err, protocol.ErrUnknownTopicOrPartition) {
		t.Fatalf("missing topic: %+v", md.Topics["missing"])
	}
	f := client.NewFetcher(cl, client.FetchConfig{})
	defer f.Close()
	tp := client.TopicPartition{Topic: top.Name(), Partition: 0}
	f.Assign(tp, top.HighWatermark(0)+5)
	fe, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Release()
	if len(fe.Partitions) != 1 || !errors.Is(fe.Partitions[0].Err, protocol.ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the end: %+v", fe.Partitions)
	}
}

// TestKcatReadsEveryRecord runs Debian's kcat (librdkafka) over the topic,
// as the backup benchmark does, and compares its output with the
// generator's records.
func TestKcatReadsEveryRecord(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (scripts/test.sh installs it)")
	}
	for _, codec := range []record.Codec{record.None, record.LZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			s, addr := serve(t, TopicConfig{Partitions: 2, Bytes: 2 << 20, BatchBytes: 16 << 10, PoolBytes: 512 << 10, Codec: codec})
			top := s.Topic()
			ctx := ctxFor(t)
			// Keys are binary: each record is a header line with the
			// lengths, then the key and value bytes.
			cmd := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", top.Name(), "-e", "-o", "beginning", "-q", "-f", "%p %o %K %S\n%k%s")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kcat: %v\n%s", err, stderr.String())
			}
			key, value := make([]byte, DefaultKeyBytes), make([]byte, DefaultValueBytes)
			next := make([]int64, top.NumPartitions())
			r := bufio.NewReader(bytes.NewReader(out))
			for {
				line, err := r.ReadString('\n')
				if err == io.EOF && line == "" {
					break
				}
				var p, klen, vlen int
				var off int64
				if _, err := fmt.Sscanf(line, "%d %d %d %d\n", &p, &off, &klen, &vlen); err != nil {
					t.Fatalf("kcat header %q: %v", line, err)
				}
				kv := make([]byte, klen+vlen)
				if _, err := io.ReadFull(r, kv); err != nil {
					t.Fatalf("kcat output ends in partition %d offset %d: %v", p, off, err)
				}
				if off != next[p] {
					t.Fatalf("partition %d: offset %d after %d", p, off, next[p]-1)
				}
				next[p]++
				top.Record(p, off, key, value)
				if !bytes.Equal(kv, append(append([]byte(nil), key...), value...)) {
					t.Fatalf("partition %d offset %d: kcat printed %.60q", p, off, kv)
				}
			}
			for p := range next {
				if next[p] != top.HighWatermark(p) {
					t.Errorf("partition %d: kcat read to %d, high watermark %d; stderr:\n%s", p, next[p], top.HighWatermark(p), stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "ERROR") {
				t.Errorf("kcat: %s", stderr.String())
			}
		})
	}
}
