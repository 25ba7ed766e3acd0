// Regression tests from the code review of the client (see the issue 4 note):
// each reproduced a bug before its fix.

package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/ktape/ktape/record"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Poll blocked in another goroutine never returns after Close.
func TestReviewPollAfterClose(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	cl, err := New(context.Background(), c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f := NewFetcher(cl, FetchConfig{})
	res := make(chan error, 1)
	go func() { _, err := f.Poll(context.Background()); res <- err }()
	time.Sleep(100 * time.Millisecond)
	f.Close()
	select {
	case err := <-res:
		t.Logf("Poll returned %v", err)
	case <-time.After(2 * time.Second):
		t.Error("Poll still blocked 2s after Close")
	}
}

// A connection dialled while Client.Close runs is kept, open, after Close.
func TestReviewConnToRacesClose(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(2), kfake.SeedTopics(1, "t"))
	cl, err := New(context.Background(), c.ListenAddrs()[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	var other string
	for _, b := range cl.Metadata().Brokers {
		if b.Addr() != c.ListenAddrs()[0] {
			other = b.Addr()
		}
	}
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	c.ControlKey(18, func(kmsg.Request) (kmsg.Response, error, bool) {
		entered <- struct{}{}
		<-gate
		return nil, nil, false
	})
	got := make(chan *Conn, 1)
	go func() {
		conn, err := cl.ConnTo(context.Background(), other)
		if err != nil {
			t.Log(err)
		}
		got <- conn
	}()
	<-entered
	cl.Close()
	close(gate)
	conn := <-got
	cl.mu.Lock()
	kept := cl.conns[other]
	cl.mu.Unlock()
	if conn != nil && conn.Err() == nil {
		t.Errorf("ConnTo returned a live connection after Close (kept in the map: %v): its reader goroutine leaks", kept == conn)
	}
}

// blockingClose delays Close, widening the window between close(done) and
// nc.Close in Conn.fail.
type blockingClose struct {
	net.Conn
	gate chan struct{}
}

func (b *blockingClose) Close() error { <-b.gate; return b.Conn.Close() }

// A call queued after the reader drained and exited never gets a result.
func TestReviewCallLostOnClose(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	lost := 0
	for i := 0; i < 20; i++ {
		nc, err := net.Dial("tcp", c.ListenAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		d := &Dialer{}
		gate := make(chan struct{})
		conn := newConn(&blockingClose{nc, gate}, "x", d.options())
		conn.wmu.Lock() // hold the sender between its Err check and its queueing
		res := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			resp, err := conn.Do(ctx, protocol.NewRecord(api.ApiVersions.Request), 0, 0)
			resp.Release()
			res <- err
		}()
		time.Sleep(20 * time.Millisecond) // sender passed Err(), waits on wmu
		go conn.Close()
		time.Sleep(20 * time.Millisecond) // reader saw done, drained, returned
		conn.wmu.Unlock()
		err = <-res
		close(gate)
		var ce *ConnError
		if !errors.As(err, &ce) {
			lost++
			t.Logf("attempt %d: call on a closed connection ended with %v, not a ConnError", i, err)
		}
	}
	if lost > 0 {
		t.Errorf("%d/20 calls were queued on a closed connection and waited for their context", lost)
	}
}

// A non-retriable failure (here: the broker does not offer Fetch) is never
// reported: Poll waits forever while the loop retries silently.
func TestReviewFatalFetchErrorNeverReported(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	produce(t, c, "t", 1, 10, kgo.NoCompression())
	cl, err := New(context.Background(), c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// From now on, new connections are told Fetch does not exist.
	c.ControlKey(18, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		for _, k := range []int16{3, 1} { // Metadata, Fetch
			_ = k
		}
		// Answer a tiny, Fetch-less set.
		for _, k := range []struct{ key, min, max int16 }{{3, 0, 12}, {18, 0, 3}, {2, 0, 7}} {
			ak := kmsg.NewApiVersionsResponseApiKey()
			ak.ApiKey, ak.MinVersion, ak.MaxVersion = k.key, k.min, k.max
			resp.ApiKeys = append(resp.ApiKeys, ak)
		}
		return resp, nil, true
	})
	for _, conn := range cl.conns {
		conn.Close() // force a re-dial
	}
	f := NewFetcher(cl, FetchConfig{Backoff: Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}})
	defer f.Close()
	f.Assign(TopicPartition{"t", 0}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fe, err := f.Poll(ctx)
	if err != nil {
		t.Errorf("no error reported for a partition that can never be fetched: Poll: %v", err)
		return
	}
	t.Logf("reported: %+v", fe.Partitions)
}

// UNKNOWN_LEADER_EPOCH (stale metadata) is retried with no backoff.
func TestReviewFetchNoBackoffOnEpochError(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	cl, err := New(context.Background(), c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var fetches, metas atomic.Int64
	c.ControlKey(1, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		fetches.Add(1)
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = 75 // UNKNOWN_LEADER_EPOCH
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil, true
	})
	c.ControlKey(3, func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		metas.Add(1)
		return nil, nil, false
	})
	f := NewFetcher(cl, FetchConfig{})
	f.Assign(TopicPartition{"t", 0}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	f.Poll(ctx)
	cancel()
	f.Close()
	t.Logf("1s: %d fetches, %d metadata requests", fetches.Load(), metas.Load())
	if fetches.Load() > 50 {
		t.Errorf("%d fetches in 1s on a retriable partition error: no backoff", fetches.Load())
	}
}

// Partitions are always requested in sorted order; with more backlog than
// MaxBytes the later partitions get nothing.
func TestReviewFetchStarvation(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	produce(t, c, "t", 4, 4000, kgo.NoCompression())
	cl, err := New(context.Background(), c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f := NewFetcher(cl, FetchConfig{MaxBytes: 8 << 10, PartitionMaxBytes: 8 << 10, MinBytes: 1})
	defer f.Close()
	for p := int32(0); p < 4; p++ {
		f.Assign(TopicPartition{"t", p}, 0)
	}
	got := map[int32]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var line []string
		for _, fp := range fe.Partitions {
			got[fp.Partition] += len(fp.Records)
			line = append(line, fmt.Sprintf("p%d:%dB@%d", fp.Partition, len(fp.Records), fp.FetchOffset))
		}
		t.Logf("fetch %d: %v", i, line)
		fe.Release()
	}
	t.Logf("bytes per partition over 10 fetches: %v", got)
	if got[2] == 0 && got[3] == 0 {
		t.Error("partitions 2 and 3 got nothing while 0 and 1 had backlog")
	}
}

// A response that crosses a message-format upgrade (v1 messages, then v2
// batches) is framed by the legacy loop: a v2 batch counts as one offset,
// so NextOffset lands inside it and the batch is delivered again.
func TestReviewMixedMagicNextOffset(t *testing.T) {
	msg := []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'x'}
	data := binary.BigEndian.AppendUint64(nil, 0)
	data = binary.BigEndian.AppendUint32(data, uint32(len(msg)))
	data = append(data, msg...)
	var b record.Builder
	h := record.NoProducer
	h.BaseOffset = 1
	b.Reset(nil, h, nil)
	for i := 0; i < 3; i++ {
		b.Append(1, nil, []byte("v"), nil)
	}
	_, batch, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, batch...)
	recs, next, err := completeBatches(data, 0)
	t.Logf("records %d of %d bytes, next %d, err %v (v2 batch covers offsets 1..%d)", len(recs), len(data), next, err, batch.LastOffset())
	if next != batch.LastOffset()+1 {
		t.Errorf("NextOffset %d, want %d: the v2 batch will be fetched and delivered again", next, batch.LastOffset()+1)
	}
}
