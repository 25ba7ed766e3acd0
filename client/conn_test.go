package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "orders")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func dial(t *testing.T, c *kfake.Cluster, d *Dialer) *Conn {
	t.Helper()
	if d == nil {
		d = &Dialer{}
	}
	conn, err := d.Dial(context.Background(), c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// metadata asks for one topic and returns its partition count.
func metadata(ctx context.Context, conn *Conn) (int, error) {
	v, err := conn.Version(api.Metadata)
	if err != nil {
		return 0, err
	}
	req := protocol.NewRecord(api.Metadata.Request)
	topic := req.Append(api.Metadata.Request.Handle("Topics"))
	topic.SetName("Name", "orders")
	resp, err := conn.Do(ctx, req, v, 0)
	if err != nil {
		return 0, err
	}
	defer resp.Release()
	var d protocol.Decoder
	m, err := api.DecodeMetadataResponse(&d, v, resp.Body)
	if err != nil {
		return 0, err
	}
	if m.NumTopics() != 1 {
		return 0, errors.New("no topic in the response")
	}
	return m.Topic(0).NumPartitions(), nil
}

func TestDialNegotiatesVersions(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, nil)
	for _, a := range []*protocol.API{api.Fetch, api.Produce, api.Metadata, api.ApiVersions} {
		v, err := conn.Version(a)
		if err != nil {
			t.Fatal(err)
		}
		if v < 4 && a == api.Fetch || v > a.MaxVersion {
			t.Fatalf("%s: negotiated v%d", a.Name, v)
		}
	}
	if n, err := metadata(context.Background(), conn); err != nil || n != 3 {
		t.Fatalf("metadata: %d partitions, %v", n, err)
	}
}

// An older broker answers ApiVersions v4 with UNSUPPORTED_VERSION and its
// range in a v0 body; ktape asks again at the broker's version.
func TestDialFallsBackOnOldApiVersions(t *testing.T) {
	c := newCluster(t, kfake.MaxVersions(kversion.V2_3_0()))
	conn := dial(t, c, nil)
	v, err := conn.Version(api.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if v != 8 { // Kafka 2.3's Metadata maximum
		t.Fatalf("Metadata v%d, want 8", v)
	}
	if n, err := metadata(context.Background(), conn); err != nil || n != 3 {
		t.Fatalf("metadata: %d, %v", n, err)
	}
}

// Many concurrent calls share one connection, several in flight, each
// getting its own response.
func TestPipelining(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, &Dialer{MaxInFlight: 4})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := metadata(context.Background(), conn); err != nil || n != 3 {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A caller that gives up does not break the connection: the late response
// is read and released, and the next call gets its own response.
func TestAbandonedCall(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, nil)
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
		return nil, nil, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := metadata(ctx, conn); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if n, err := metadata(context.Background(), conn); err != nil || n != 3 {
		t.Fatalf("after an abandoned call: %d, %v", n, err)
	}
	if conn.Err() != nil {
		t.Fatal(conn.Err())
	}
}

// No response within the request timeout fails the connection with a
// retriable error, for the waiting call and every later one.
func TestRequestTimeout(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, &Dialer{RequestTimeout: 100 * time.Millisecond})
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { time.Sleep(500 * time.Millisecond) })
		return nil, nil, false
	})
	_, err := metadata(context.Background(), conn)
	var ce *ConnError
	if !errors.As(err, &ce) || !ce.Retriable {
		t.Fatalf("got %v, want a retriable ConnError", err)
	}
	if _, err := metadata(context.Background(), conn); !errors.As(err, &ce) {
		t.Fatalf("failed connection accepted a call: %v", err)
	}
}

// A broker that drops the connection fails the in-flight call with a
// retriable error, not a hang.
func TestBrokerDropsConnection(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, nil)
	c.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		return nil, errors.New("drop it"), true
	})
	_, err := metadata(context.Background(), conn)
	var ce *ConnError
	if !errors.As(err, &ce) || !ce.Retriable {
		t.Fatalf("got %v, want a retriable ConnError", err)
	}
}

// A response over the size limit is refused before it is read: here the
// ApiVersions response during Dial.
func TestResponseTooLarge(t *testing.T) {
	c := newCluster(t)
	d := &Dialer{MaxResponseSize: 64}
	_, err := d.Dial(context.Background(), c.ListenAddrs()[0])
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Retriable {
		t.Fatalf("got %v, want a non-retriable ConnError", err)
	}
}

func TestBufferPool(t *testing.T) {
	var p BufferPool
	for _, n := range []int{1, 4096, 4097, 1 << 20, 3<<20 + 5} {
		b := p.Get(n)
		if len(b) != n || cap(b) < n || cap(b) > 2*max(n, 4096) {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
		p.Put(b)
	}
	if testing.AllocsPerRun(100, func() { p.Put(p.Get(10000)) }) != 0 {
		t.Fatal("pool does not reuse buffers")
	}
}

// A Produce request whose batches are written from the caller's memory
// (writev) is accepted by the broker and reads back through franz-go.
func TestProduceVectored(t *testing.T) {
	c := newCluster(t)
	conn := dial(t, c, nil)
	v, err := conn.Version(api.Produce)
	if err != nil {
		t.Fatal(err)
	}
	var b record.Builder
	b.Reset(nil, record.NoProducer, nil)
	value := bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < 100; i++ { // a 100 KB batch: referenced, not copied
		b.Append(int64(1_700_000_000_000+i), []byte(fmt.Sprintf("k%d", i)), value, nil)
	}
	batch, _, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	s := api.Produce.Request
	req := protocol.NewRecord(s).SetName("Acks", int16(-1)).SetName("TimeoutMs", int32(10000))
	td := req.Append(s.Handle("TopicData")).SetName("Name", "orders")
	if m := c.TopicInfo("orders"); m != nil {
		td.SetName("TopicId", [16]byte(m.TopicID))
	}
	td.Append(td.Schema().Handle("PartitionData")).SetName("Index", int32(1)).SetName("Records", batch)
	resp, err := conn.Do(context.Background(), req, v, 0)
	if err != nil {
		t.Fatal(err)
	}
	var d protocol.Decoder
	pr, err := api.DecodeProduceResponse(&d, v, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if code := pr.Topic(0).Partition(0).ErrorCode(); code != 0 {
		t.Fatalf("produce: %v", protocol.ErrorForCode(code))
	}
	resp.Release()
	got := consumeKgo(t, c, "orders", 100)
	if len(got) != 100 || !strings.Contains(got[0], "k0=xxx") {
		t.Fatalf("read back %d records, first %.40q", len(got), got[0])
	}
}
