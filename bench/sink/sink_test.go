package sink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

const testRecords = 10_000

// startSink serves a sink with partitions partitions on a loopback port
// and returns it and its address; it is closed when the test ends.
func startSink(t *testing.T, partitions int, verify bool) (*sink, string, *lockedBuffer) {
	t.Helper()
	return startSinkConfig(t, config{Partitions: partitions, Verify: verify, MaxFrame: defaultMaxFrame})
}

// startSinkConfig is startSink with a whole configuration; its log goes to
// the returned buffer.
func startSinkConfig(t *testing.T, cfg config) (*sink, string, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(cfg)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	t.Cleanup(func() {
		s.close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() && logs.Len() > 0 {
			t.Logf("sink log:\n%s", logs.String())
		}
	})
	return s, ln.Addr().String(), logs
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Len()
}

func checkTotals(t *testing.T, s *sink, wantRecords int64) {
	t.Helper()
	got := s.totals()
	if got.Records != wantRecords {
		t.Errorf("sink counted %d records, want %d (totals %+v)", got.Records, wantRecords, got)
	}
	if got.Corrupt != 0 {
		t.Errorf("sink counted %d corrupt batches", got.Corrupt)
	}
	if got.Batches == 0 || got.Bytes == 0 || got.Requests == 0 {
		t.Errorf("implausible totals %+v", got)
	}
}

func TestKgoProduce(t *testing.T) {
	s, addr, _ := startSink(t, 3, true)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic("bench"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var (
		mu       sync.Mutex
		firstErr error
		acked    int
		offsets  [3]int64
		ordered  = true
		value    = bytes.Repeat([]byte("v"), 100)
		expected [3]int64
	)
	for i := range testRecords {
		p := int32(i % 3)
		cl.Produce(ctx, &kgo.Record{Partition: p, Value: value}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked++
			if r.Offset != expected[r.Partition] {
				ordered = false
			}
			expected[r.Partition] = r.Offset + 1
			offsets[r.Partition]++
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		t.Fatalf("produce: %v", firstErr)
	}
	if acked != testRecords {
		t.Fatalf("kgo acknowledged %d records, want %d", acked, testRecords)
	}
	if !ordered {
		t.Errorf("offsets per partition were not consecutive from 0")
	}
	for p, n := range offsets {
		if want := int64(testRecords / 3); n < want {
			t.Errorf("partition %d got %d records, want about %d", p, n, want)
		}
	}
	checkTotals(t, s, testRecords)
}

func TestKgoAcksZero(t *testing.T) {
	s, addr, _ := startSink(t, 2, false)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic("fire-and-forget"),
		kgo.RequiredAcks(kgo.NoAck()),
		kgo.DisableIdempotentWrite(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 1000
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Value: []byte{byte(i)}}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Without responses, the sink may still be counting after Flush.
	deadline := time.Now().Add(5 * time.Second)
	for s.totals().Records < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	checkTotals(t, s, n)
}

// TestCreateAndListOffsets drives the calls ktape restore makes before it
// produces (Metadata, CreateTopics, ListOffsets) through ktape's client,
// with automatic topic creation off, and checks the offsets after kgo
// produced.
func TestCreateAndListOffsets(t *testing.T) {
	_, addr, _ := startSinkConfig(t, config{Partitions: 16, NoAutoCreate: true, Verify: true, MaxFrame: defaultMaxFrame})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	md, err := c.RefreshMetadata(ctx, []string{"restored"})
	if err != nil {
		t.Fatal(err)
	}
	if tm := md.Topics["restored"]; tm == nil || !errors.Is(tm.Err, protocol.ErrorForCode(errUnknownTopicOrPart)) {
		t.Fatalf("metadata of a topic not created: %+v, want UNKNOWN_TOPIC_OR_PARTITION", tm)
	}
	res := c.CreateTopics(ctx, []client.TopicSpec{{Name: "restored", NumPartitions: 3, ReplicationFactor: 3, Configs: map[string]string{"retention.ms": "-1"}}})
	if err := res["restored"]; err != nil {
		t.Fatalf("create: %v", err)
	}
	res = c.CreateTopics(ctx, []client.TopicSpec{{Name: "restored", NumPartitions: 3, ReplicationFactor: 1}})
	if err := res["restored"]; !errors.Is(err, protocol.ErrorForCode(errTopicAlreadyExists)) {
		t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if md, err = c.RefreshMetadata(ctx, []string{"restored"}); err != nil {
		t.Fatal(err)
	}
	if tm := md.Topics["restored"]; tm == nil || tm.Err != nil || len(tm.Partitions) != 3 {
		t.Fatalf("metadata after create: %+v, want 3 partitions", tm)
	}
	offsets := func(ts int64) [3]int64 {
		t.Helper()
		q := map[client.TopicPartition]int64{}
		for p := range int32(3) {
			q[client.TopicPartition{Topic: "restored", Partition: p}] = ts
		}
		got, err := c.ListOffsets(ctx, client.ReadUncommitted, q)
		if err != nil {
			t.Fatal(err)
		}
		var out [3]int64
		for tp, r := range got {
			if r.Err != nil {
				t.Fatalf("%s: %v", tp, r.Err)
			}
			out[tp.Partition] = r.Offset
		}
		return out
	}
	if lo, hi := offsets(client.Earliest), offsets(client.Latest); lo != [3]int64{} || hi != [3]int64{} {
		t.Fatalf("new topic: earliest %v, latest %v; want zeros", lo, hi)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("restored"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 30 {
		cl.Produce(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte{byte(i)}}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if lo, hi := offsets(client.Earliest), offsets(client.Latest); lo != [3]int64{} || hi != [3]int64{15, 15, 0} {
		t.Fatalf("after producing: earliest %v, latest %v; want zeros and [15 15 0]", lo, hi)
	}
}

func TestSaramaProduce(t *testing.T) {
	s, addr, _ := startSink(t, 3, true)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewAsyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	value := sarama.ByteEncoder(bytes.Repeat([]byte("v"), 100))
	done := make(chan error, 1)
	go func() {
		var n int
		var firstErr error
		for n < testRecords {
			select {
			case <-p.Successes():
				n++
			case e := <-p.Errors():
				n++
				if firstErr == nil {
					firstErr = e
				}
			case <-time.After(30 * time.Second):
				done <- io.ErrNoProgress
				return
			}
		}
		done <- firstErr
	}()
	for i := range testRecords {
		p.Input() <- &sarama.ProducerMessage{Topic: "bench", Partition: int32(i % 3), Value: value}
	}
	if err := <-done; err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s, testRecords)
}

// roundTrip sends one raw request frame and returns the response frame.
func roundTrip(t *testing.T, c net.Conn, frame []byte) []byte {
	t.Helper()
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := protocol.ReadFrame(c, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestApiVersionsNewerThanKnown(t *testing.T) {
	_, addr, _ := startSink(t, 1, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An ApiVersions v99 request: header v2 with a body we cannot know.
	hdr := protocol.RequestHeader{APIKey: 18, APIVersion: 99, CorrelationID: 7, ClientID: []byte("future")}
	body := hdr.AppendTo(nil, 2)
	body = append(body, 0xde, 0xad, 0xbe, 0xef)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	resp := roundTrip(t, c, append(frame, body...))
	corr, rb, err := protocol.ParseResponseHeader(resp, 0)
	if err != nil || corr != 7 {
		t.Fatalf("header: corr %d err %v", corr, err)
	}
	var d protocol.Decoder
	v, err := d.Decode(api.ApiVersions.Response, 0, rb)
	if err != nil {
		t.Fatal(err)
	}
	if code := v.Int16(h.avErr); code != errUnsupportedVersion {
		t.Errorf("error code %d, want %d", code, errUnsupportedVersion)
	}
	keys := v.Array(h.avKeys)
	found := map[int16][2]int16{}
	for i := 0; i < keys.Len(); i++ {
		e := keys.At(i)
		found[e.Int16(h.avKey)] = [2]int16{e.Int16(h.avMin), e.Int16(h.avMax)}
	}
	if got := found[18]; got != [2]int16{0, api.ApiVersions.MaxVersion} {
		t.Errorf("ApiVersions range %v", got)
	}
	// librdkafka compresses only if Produce v0 and FindCoordinator are
	// announced (TestKcatCompresses).
	if got := found[0]; got != [2]int16{0, api.Produce.MaxVersion} {
		t.Errorf("Produce range %v", got)
	}
	if _, ok := found[api.FindCoordinator.Key]; !ok {
		t.Errorf("FindCoordinator not announced")
	}
}

// TestKcatCompresses produces with kcat (librdkafka) in every codec and
// checks that the sink received batches in that codec: librdkafka sends
// uncompressed batches, silently, to a broker whose ApiVersions do not
// look like Kafka 0.8.2 or later.
func TestKcatCompresses(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (scripts/test.sh installs it)")
	}
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		s, addr, _ := startSink(t, 1, true)
		cmd := exec.Command(kcat, "-P", "-b", addr, "-t", "bench", "-z", codec, "-X", "linger.ms=1")
		cmd.Stdin = strings.NewReader(strings.Repeat("a record that compresses, a record that compresses\n", 1000))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat -z %s: %v\n%s", codec, err, out)
		}
		got := s.totals()
		if got.Records != 1000 || got.Corrupt != 0 || got.Codecs[codec] != got.Batches {
			t.Errorf("kcat -z %s: the sink received %+v; want 1000 records, every batch %s", codec, got, codec)
		}
	}
}

func TestBadInputClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		frame   []byte
		wantLog string
	}{
		{"unknown api", frameOf(protocol.RequestHeader{APIKey: 1, APIVersion: 12, CorrelationID: 1}, 1, nil), "unsupported request Fetch v12"},
		{"unknown key", frameOf(protocol.RequestHeader{APIKey: 999, APIVersion: 0, CorrelationID: 1}, 1, nil), "unsupported request key 999"},
		{"short header", []byte{0, 0, 0, 2, 0, 3}, "no api key"},
		{"garbage produce", frameOf(protocol.RequestHeader{APIKey: 0, APIVersion: 7, CorrelationID: 1}, 1, []byte{0xff, 0xff, 0, 0, 0}), "Produce v7"},
		{"huge frame", []byte{0x7f, 0xff, 0xff, 0xff}, "frame too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, logs := startSink(t, 1, false)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read after bad frame: %d bytes, %v; want EOF", n, err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for !strings.Contains(logs.String(), tc.wantLog) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q does not mention %q", logs.String(), tc.wantLog)
			}
		})
	}
}

func frameOf(hdr protocol.RequestHeader, hv int16, body []byte) []byte {
	b := hdr.AppendTo(nil, hv)
	b = append(b, body...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}
