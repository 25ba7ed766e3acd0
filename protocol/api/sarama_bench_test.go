package api

// Adapters that run IBM/sarama's FetchResponse decoder and ProduceRequest
// encoder on the same bytes as the other implementations.
//
// sarama's encoders and decoders are unexported (versionedDecode, decode and
// encode take unexported interfaces); the only public way to run them is a
// *sarama.Broker. So the adapters give a Broker an in-memory net.Conn through
// its proxy-dialer hook: every request frame sarama writes is answered with a
// prepared response frame carrying the request's correlation id, which
// sarama then reads and decodes with its own decoder.
//
// What a sarama iteration costs beyond the decode or encode itself, and what
// the other implementations do not pay: encoding the request (or, for
// Fetch, a one-partition FetchRequest), two goroutine hand-offs (the Broker
// reads responses on its own goroutine and passes them back over channels),
// copying the response out of the conn into a fresh buffer (a real client
// reads the socket into a buffer too), and metric-registry look-ups that a
// Broker always does (the registry cannot be nil; per-topic histogram names
// are built with string concatenation on every Produce).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// saramaMaxFetchVersion and saramaMaxProduceVersion are the highest versions
// sarama v1.61.1 can decode/encode (FetchResponse.isValidVersion: 0..12,
// ProduceRequest.isValidVersion: 0..10).
const (
	saramaMaxFetchVersion = 12
	// saramaProduceVersion is what sarama's own producer sends for
	// Version V2_8_0_0 up to V3_7 (produce_set.go); v9 is the first flexible
	// version. v10 only adds tagged fields to the response.
	saramaProduceVersion = 9
)

// saramaKafkaVersion is high enough for FetchRequest v12 (V2_7_0_0; v11 needs
// V2_3_0_0) and ProduceRequest v9 (V2_8_0_0; v7 needs V2_1_0_0, v8 V2_4_0_0),
// see requiredVersion in sarama's fetch_request.go and produce_request.go.
var saramaKafkaVersion = sarama.V2_8_0_0

var saramaNilMetrics sync.Once

// saramaConfig returns a Config that dials d and does nothing on connect.
func saramaConfig(d *saramaDialer) *sarama.Config {
	// go-metrics' constructors return no-op meters and histograms when
	// UseNilMetrics is set. Without it every Broker starts real meters (a
	// background arbiter goroutine ticking every 5s) and each request updates
	// several mutex-guarded, sampling histograms and meters; that is
	// instrumentation, not protocol work, and a sarama user can turn it off
	// the same way. It is a package-global, so it is written once, before
	// any Broker goroutine reads it. (Registry look-ups by name still happen:
	// a Broker always has a registry.)
	saramaNilMetrics.Do(func() { metrics.UseNilMetrics = true })

	conf := sarama.NewConfig()
	conf.Version = saramaKafkaVersion
	conf.ApiVersionsRequest = false // no handshake: the fake conn serves one kind of response
	conf.Metadata.Full = false
	conf.Net.Proxy.Enable = true
	conf.Net.Proxy.Dialer = d // getDialer returns it as a golang.org/x/net/proxy.Dialer
	return conf
}

// saramaDialer implements golang.org/x/net/proxy.Dialer (Dial(network,
// addr string) (net.Conn, error)), the type of sarama's Config.Net.Proxy.Dialer.
type saramaDialer struct{ conn *saramaConn }

func (d *saramaDialer) Dial(network, addr string) (net.Conn, error) { return d.conn, nil }

// saramaConn is an in-memory net.Conn. Each complete request frame written to
// it makes the prepared response frame readable, with the request's
// correlation id patched in. sarama writes from the caller's goroutine and
// reads from its responseReceiver goroutine; its channels already order the
// two, the mutex only makes that independent of sarama's internals.
type saramaConn struct {
	mu      sync.Mutex
	resp    []byte // size | correlation id | [empty tag section] | body
	pending []byte // unread rest of resp
	partial []byte // a request frame written in pieces, so far
	capture bool   // keep a copy of the last request frame in last
	last    []byte
	closed  bool
}

// setResponse prepares the frame served for every following request: the
// response header is v0 (correlation id) or, for flexible versions, v1
// (correlation id and an empty tag section).
func (c *saramaConn) setResponse(body []byte, flexibleHeader bool) {
	hdr := 4
	if flexibleHeader {
		hdr++
	}
	f := make([]byte, 4+hdr, 4+hdr+len(body))
	binary.BigEndian.PutUint32(f, uint32(hdr+len(body)))
	// f[4:8] is the correlation id, patched per request; f[8] (if any) is 0:
	// no tagged fields.
	f = append(f, body...)
	c.mu.Lock()
	c.resp = f
	c.mu.Unlock()
}

func (c *saramaConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	n := len(p)
	frame := p
	if len(c.partial) > 0 || len(p) < 4 || len(p) < 4+int(binary.BigEndian.Uint32(p)) {
		// sarama writes a request with one Write; accept pieces anyway.
		c.partial = append(c.partial, p...)
		if len(c.partial) < 4 || len(c.partial) < 4+int(binary.BigEndian.Uint32(c.partial)) {
			return n, nil
		}
		frame = c.partial
	}
	size := 4 + int(binary.BigEndian.Uint32(frame))
	if len(frame) != size || size < 12 {
		return 0, fmt.Errorf("fake conn: request frame of %d bytes, size field says %d", len(frame), size)
	}
	if len(c.pending) > 0 {
		return 0, errors.New("fake conn: new request before the last response was read")
	}
	if c.resp == nil {
		return 0, errors.New("fake conn: no response prepared")
	}
	if c.capture {
		c.last = append(c.last[:0], frame...)
	}
	// size(4) api key(2) version(2) correlation id(4)
	copy(c.resp[4:8], frame[8:12])
	c.pending = c.resp
	c.partial = c.partial[:0]
	return n, nil
}

func (c *saramaConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, io.EOF
	}
	if len(c.pending) == 0 {
		// sarama only reads what a response frame's size says, so this
		// would be a bug in the adapter; fail rather than block.
		return 0, errors.New("fake conn: read with no response pending")
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *saramaConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

type saramaAddr string

func (a saramaAddr) Network() string { return "tcp" }
func (a saramaAddr) String() string  { return string(a) }

func (c *saramaConn) LocalAddr() net.Addr                { return saramaAddr("127.0.0.1:50000") }
func (c *saramaConn) RemoteAddr() net.Addr               { return saramaAddr("fake:9092") }
func (c *saramaConn) SetDeadline(t time.Time) error      { return nil }
func (c *saramaConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *saramaConn) SetWriteDeadline(t time.Time) error { return nil }

// openSaramaBroker opens a Broker on a fresh fake conn and closes it when tb
// ends.
func openSaramaBroker(tb testing.TB) (*sarama.Broker, *saramaConn, error) {
	conn := &saramaConn{}
	b := sarama.NewBroker("fake:9092")
	if err := b.Open(saramaConfig(&saramaDialer{conn: conn})); err != nil {
		return nil, nil, err
	}
	// Open dials on a goroutine; Connected waits for it.
	if ok, err := b.Connected(); err != nil || !ok {
		return nil, nil, fmt.Errorf("sarama broker not connected: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b, conn, nil
}

func fetchResponseFlexible(version int16) bool {
	r := kmsg.NewPtrFetchResponse()
	r.SetVersion(version)
	return r.IsFlexible()
}

// saramaFetchRequest is the request every Fetch sends: small, since only the
// response decode is of interest.
func saramaFetchRequest(version int16) *sarama.FetchRequest {
	req := &sarama.FetchRequest{
		Version:     version,
		MaxWaitTime: 500,
		MinBytes:    1,
		MaxBytes:    50 << 20,
		Isolation:   sarama.ReadCommitted,
	}
	req.AddBlock("topic-000", 0, 0, 1<<20, -1)
	return req
}

// saramaFetchVisitor returns a function that runs one FetchResponse decode + visit through sarama
// for the given response body (FetchResponse body bytes at `version`, without size/header), or an error if sarama cannot do that version.
func saramaFetchVisitor(tb testing.TB, version int16, body []byte) (visit func() (fetchVisit, error), err error) {
	if version < 0 || version > saramaMaxFetchVersion {
		return nil, fmt.Errorf("sarama v1.61.1 decodes FetchResponse v0..v%d, not v%d", saramaMaxFetchVersion, version)
	}
	b, conn, err := openSaramaBroker(tb)
	if err != nil {
		return nil, err
	}
	conn.setResponse(body, fetchResponseFlexible(version))
	req := saramaFetchRequest(version)
	return func() (fetchVisit, error) {
		r, err := b.Fetch(req)
		if err != nil {
			return fetchVisit{}, err
		}
		return visitSaramaFetch(r), nil
	}, nil
}

// visitSaramaFetch visits what visitKtapeFetch and visitKmsgFetch visit.
// sarama keeps no raw record-set slice: it has already parsed every batch and
// record, so recordBytes counts the topic names (as the others do) plus every
// record's key and value length.
func visitSaramaFetch(r *sarama.FetchResponse) fetchVisit {
	var out fetchVisit
	out.sum += int64(r.ErrorCode)
	for topic, parts := range r.Blocks {
		out.topics++
		out.recordBytes += len(topic)
		for partition, p := range parts {
			out.partitions++
			out.sum += int64(partition) + int64(p.Err) + p.HighWaterMarkOffset + p.LastStableOffset + p.LogStartOffset
			for _, a := range p.AbortedTransactions {
				out.aborted++
				out.sum += a.ProducerID + a.FirstOffset
			}
			for _, rs := range p.RecordsSet {
				if rs.RecordBatch != nil {
					for _, rec := range rs.RecordBatch.Records {
						out.recordBytes += len(rec.Key) + len(rec.Value)
					}
				}
				if rs.MsgSet != nil {
					for _, m := range rs.MsgSet.Messages {
						if m.Msg != nil {
							out.recordBytes += len(m.Msg.Key) + len(m.Msg.Value)
						}
					}
				}
			}
		}
	}
	return out
}

// saramaProducer sends one prepared ProduceRequest per call through a fake
// conn.
type saramaProducer struct {
	b        *sarama.Broker
	conn     *saramaConn
	req      *sarama.ProduceRequest
	template sarama.RecordBatch    // decoded from the raw batch, never encoded
	batches  []*sarama.RecordBatch // the request's batches, one per partition
	reencode bool
}

// saramaProduceEncoder returns a function that encodes one ProduceRequest equivalent to
// `topics` x `partitions` partitions each carrying `batch` (a raw v2 record batch) through sarama's encoder,
// i.e. sends it through the fake conn (the response served back is an empty-but-valid ProduceResponse for that version).
// Report which Produce version sarama used.
func saramaProduceEncoder(tb testing.TB, topics, partitions int, batch []byte) (encode func() error, version int16, err error) {
	p, err := newSaramaProducer(tb, topics, partitions, batch, true)
	if err != nil {
		return nil, 0, err
	}
	return p.send, p.req.Version, nil
}

// newSaramaProducer builds the request. sarama cannot send raw batch bytes:
// ProduceRequest only takes a *sarama.RecordBatch of parsed records, which it
// encodes into bytes and checksums. So batch is decoded into a RecordBatch
// once, by sarama itself: it is served as a one-partition FetchResponse v11
// through the same fake conn.
//
// sarama caches a batch's encoded records (RecordBatch.compressedRecords) on
// the first encode, so a RecordBatch sent again costs only a copy and the CRC.
// Its producer never resends a batch except on retry: every flush builds new
// RecordBatches whose records get encoded (and compressed) once. With
// reencode, each send first resets every batch to the never-encoded template
// (a struct copy, no allocation), so that every send pays that record
// encoding plus the CRC, which is sarama's real per-request cost; without it,
// the benchmark measures the cached resend path.
func newSaramaProducer(tb testing.TB, topics, partitions int, batch []byte, reencode bool) (*saramaProducer, error) {
	b, conn, err := openSaramaBroker(tb)
	if err != nil {
		return nil, err
	}

	const fetchVersion = 11
	fr := kmsg.NewFetchResponse()
	fr.Version = fetchVersion
	ft := kmsg.NewFetchResponseTopic()
	ft.Topic = "topic-000"
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.RecordBatches = batch
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	conn.setResponse(fr.AppendTo(nil), fetchResponseFlexible(fetchVersion))
	resp, err := b.Fetch(saramaFetchRequest(fetchVersion))
	if err != nil {
		return nil, fmt.Errorf("sarama decoding the batch: %w", err)
	}
	blk := resp.GetBlock("topic-000", 0)
	if blk == nil || len(blk.RecordsSet) != 1 || blk.RecordsSet[0].RecordBatch == nil {
		return nil, errors.New("sarama decoding the batch: want exactly one v2 record batch")
	}
	rb := blk.RecordsSet[0].RecordBatch
	if rb.PartialTrailingRecord {
		return nil, errors.New("sarama decoding the batch: truncated")
	}

	p := &saramaProducer{b: b, conn: conn, template: *rb, reencode: reencode}
	p.req = &sarama.ProduceRequest{
		RequiredAcks: sarama.WaitForAll,
		Timeout:      30000,
		Version:      saramaProduceVersion,
	}
	for t := 0; t < topics; t++ {
		topic := fmt.Sprintf("topic-%03d", t)
		for part := 0; part < partitions; part++ {
			rb := new(sarama.RecordBatch)
			*rb = p.template
			p.batches = append(p.batches, rb)
			p.req.AddBatch(topic, int32(part), rb)
		}
	}

	pr := kmsg.NewPtrProduceResponse()
	pr.Version = p.req.Version
	conn.setResponse(pr.AppendTo(nil), pr.IsFlexible())
	return p, nil
}

func (p *saramaProducer) send() error {
	if p.reencode {
		for _, rb := range p.batches {
			*rb = p.template
		}
	}
	_, err := p.b.Produce(p.req)
	return err
}

func TestSaramaAdapters(t *testing.T) {
	const version = 11
	for _, s := range fetchShapes {
		if s.name != "small" && s.name != "wide" {
			continue
		}
		s := s
		s.abortedTx = 2
		body := fetchResponseBody(s, version)
		want, err := visitKmsgFetch(version, body)
		if err != nil {
			t.Fatal(err)
		}
		visit, err := saramaFetchVisitor(t, version, body)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ { // the correlation id changes every time
			got, err := visit()
			if err != nil {
				t.Fatalf("%s v%d: %v", s.name, version, err)
			}
			if got.topics != want.topics || got.partitions != want.partitions || got.aborted != want.aborted || got.sum != want.sum {
				t.Fatalf("%s v%d: sarama %+v, kmsg %+v", s.name, version, got, want)
			}
			// recordBytes differs by design: kmsg counts the raw record
			// sets, sarama the parsed keys and values. Check that sarama's
			// count is exactly every record's key and value.
			wantKV := 0
			for tp := 0; tp < s.topics; tp++ {
				wantKV += len(fmt.Sprintf("topic-%03d", tp))
			}
			for r := 0; r < s.records; r++ {
				wantKV += s.partitions * s.topics * (len(fmt.Sprintf("key-%d", r)) + s.valueSize)
			}
			if got.recordBytes != wantKV {
				t.Fatalf("%s v%d: sarama saw %d key+value+topic bytes, want %d", s.name, version, got.recordBytes, wantKV)
			}
			if i == 0 {
				t.Logf("%s v%d: sarama %+v, kmsg %+v", s.name, version, got, want)
			}
		}
	}
	if _, err := saramaFetchVisitor(t, 16, fetchResponseBody(fetchShapes[0], 16)); err == nil {
		t.Error("sarama fetch visitor accepted v16")
	}

	const topics, partitions = 16, 8
	batch := testBatch(0, 10, 100, 0)
	for _, reencode := range []bool{true, false} {
		p, err := newSaramaProducer(t, topics, partitions, batch, reencode)
		if err != nil {
			t.Fatal(err)
		}
		p.conn.mu.Lock()
		p.conn.capture = true
		p.conn.mu.Unlock()
		for i := 0; i < 3; i++ {
			if err := p.send(); err != nil {
				t.Fatalf("reencode=%v: send %d: %v", reencode, i, err)
			}
			p.conn.mu.Lock()
			frame := bytes.Clone(p.conn.last)
			p.conn.mu.Unlock()
			checkSaramaProduceFrame(t, frame, p.req.Version, topics, partitions, batch)
		}
	}
	encode, v, err := saramaProduceEncoder(t, topics, partitions, batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := encode(); err != nil {
		t.Fatal(err)
	}
	t.Logf("sarama sent ProduceRequest v%d", v)
}

// checkSaramaProduceFrame decodes a request frame sarama wrote with kmsg.
func checkSaramaProduceFrame(t *testing.T, frame []byte, version int16, topics, partitions int, batch []byte) {
	t.Helper()
	be := binary.BigEndian
	if len(frame) < 14 || int(be.Uint32(frame)) != len(frame)-4 {
		t.Fatalf("bad frame of %d bytes", len(frame))
	}
	if key, v := int16(be.Uint16(frame[4:])), int16(be.Uint16(frame[6:])); key != 0 || v != version {
		t.Fatalf("request key %d v%d, want 0 v%d", key, v, version)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	// request header v1: size, key, version, correlation id, client id
	// (int16 length; -1 is null); v2 adds a tag section.
	off := 12
	if n := int16(be.Uint16(frame[off:])); n > 0 {
		off += int(n)
	}
	off += 2
	if req.IsFlexible() {
		tags, n := binary.Uvarint(frame[off:])
		if n <= 0 || tags != 0 {
			t.Fatalf("request header tag section: %d tags (n=%d)", tags, n)
		}
		off += n
	}
	if err := req.ReadFrom(frame[off:]); err != nil {
		t.Fatalf("kmsg ProduceRequest v%d: %v", version, err)
	}
	if req.Acks != -1 || req.TimeoutMillis != 30000 || len(req.Topics) != topics {
		t.Fatalf("acks %d timeout %d topics %d", req.Acks, req.TimeoutMillis, len(req.Topics))
	}
	seen := map[string]bool{}
	for _, rt := range req.Topics {
		if seen[rt.Topic] {
			t.Fatalf("topic %q twice", rt.Topic)
		}
		seen[rt.Topic] = true
		if len(rt.Partitions) != partitions {
			t.Fatalf("topic %q: %d partitions", rt.Topic, len(rt.Partitions))
		}
		parts := map[int32]bool{}
		for _, rp := range rt.Partitions {
			parts[rp.Partition] = true
			if n := checkBatch(t, rp.Records); n != 10 {
				t.Fatalf("topic %q partition %d: %d records", rt.Topic, rp.Partition, n)
			}
			// sarama re-encodes the records it parsed; for this batch
			// that reproduces the input exactly.
			if !bytes.Equal(rp.Records, batch) {
				t.Fatalf("topic %q partition %d: sarama's batch differs from the input", rt.Topic, rp.Partition)
			}
		}
		if len(parts) != partitions {
			t.Fatalf("topic %q: partitions %v", rt.Topic, parts)
		}
	}
	for i := 0; i < topics; i++ {
		if !seen[fmt.Sprintf("topic-%03d", i)] {
			t.Fatalf("topic-%03d missing", i)
		}
	}
}

// checkBatch checks that b is exactly one CRC-valid v2 batch and returns the
// number of records it parses into.
func checkBatch(t *testing.T, b []byte) int {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatalf("record batch: %v", err)
	}
	if rb.Magic != 2 || int(rb.Length)+12 != len(b) {
		t.Fatalf("record batch: magic %d, length %d of %d bytes", rb.Magic, rb.Length, len(b))
	}
	if got := crc32.Checksum(b[21:], castagnoli); got != uint32(rb.CRC) {
		t.Fatalf("record batch: crc %08x, computed %08x", uint32(rb.CRC), got)
	}
	recs, n := rb.Records, 0
	for len(recs) > 0 {
		l, k := binary.Varint(recs)
		if k <= 0 || l < 0 || int(l) > len(recs)-k {
			t.Fatalf("record %d: bad length", n)
		}
		var r kmsg.Record
		if err := r.ReadFrom(recs[:k+int(l)]); err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		recs = recs[k+int(l):]
		n++
	}
	if n != int(rb.NumRecords) {
		t.Fatalf("batch says %d records, has %d", rb.NumRecords, n)
	}
	return n
}
