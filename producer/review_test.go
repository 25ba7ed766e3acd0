// Regression tests from the code review of the producer: each reproduced a
// bug before its fix.

package producer_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func errResp(req kmsg.Request, code int16) kmsg.Response {
	r := req.(*kmsg.ProduceRequest)
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, pp := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = pp.Partition
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func sendWait(t *testing.T, p *producer.Producer, tp client.TopicPartition, b record.Batch) error {
	t.Helper()
	ch := make(chan error, 1)
	if err := p.SendBatch(context.Background(), tp, b, func(_ int64, err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no done")
	}
	return nil
}

// A batch the broker rejects for good (MESSAGE_TOO_LARGE: never written)
// poisons the partition: nextSeq is not rewound, so every later batch is
// OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestReviewSequenceNotRewoundAfterFailure(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	var reject atomic.Bool
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		if reject.Swap(false) {
			return errResp(req, 10), nil, true // MESSAGE_TOO_LARGE
		}
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{})
	tp := client.TopicPartition{Topic: "t", Partition: 0}
	if err := sendWait(t, p, tp, build(t, record.None, 0, 5)); err != nil {
		t.Fatalf("first: %v", err)
	}
	reject.Store(true)
	if err := sendWait(t, p, tp, build(t, record.None, 1, 5)); err == nil {
		t.Fatal("rejected batch succeeded")
	} else {
		t.Logf("second (rejected as expected): %v", err)
	}
	for i := 2; i < 4; i++ {
		if err := sendWait(t, p, tp, build(t, record.None, i, 5)); err != nil {
			t.Errorf("batch %d after the rejected one: %v", i, err)
		}
	}
}

// DeliveryTimeout is not enforced while a partition has no leader (or its
// topic does not exist): done never runs, Flush hangs.
func TestReviewDeliveryTimeoutWithoutLeader(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	p, _ := newProducer(t, c, producer.Config{DeliveryTimeout: 300 * time.Millisecond,
		Backoff: client.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	done := make(chan error, 1)
	if err := p.SendBatch(context.Background(), client.TopicPartition{Topic: "missing", Partition: 0}, build(t, record.None, 0, 1),
		func(_ int64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("done: %v", err)
	case <-time.After(3 * time.Second):
		t.Error("DeliveryTimeout 300ms: batch for a missing topic still not failed after 3s")
	}
}

// A retriable error that leaves the leader where it is (NOT_ENOUGH_REPLICAS)
// is retried with no backoff at all.
func TestReviewNoBackoffOnRetriable(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	var n, meta atomic.Int64
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		n.Add(1)
		return errResp(req, 19), nil, true
	})
	k.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		meta.Add(1)
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{DeliveryTimeout: time.Second})
	err := sendWait(t, p, client.TopicPartition{Topic: "t", Partition: 0}, build(t, record.None, 0, 1))
	t.Logf("done after %d produce and %d metadata requests in ~1s: %v", n.Load(), meta.Load(), err)
	if n.Load() > 50 {
		t.Errorf("%d produce requests in 1s: no backoff", n.Load())
	}
}

// done runs for a batch whose bytes are still being written to the socket:
// the caller's reuse of the buffer reaches the broker.
func TestReviewDoneBeforeWriteFinished(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	var n atomic.Int32
	release := make(chan struct{})
	var sawMutated atomic.Bool
	var bigSeen atomic.Bool
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		i := n.Add(1)
		sz := 0
		for _, t := range r.Topics {
			for _, pp := range t.Partitions {
				sz += len(pp.Records)
			}
		}
		if i == 1 {
			<-release
			return errResp(req, 87), nil, true // INVALID_RECORD: not retriable
		}
		for _, t := range r.Topics {
			for _, pp := range t.Partitions {
				if len(pp.Records) > 1<<20 {
					bigSeen.Store(true)
					if bytes.Contains(pp.Records, bytes.Repeat([]byte{'Z'}, 64)) {
						sawMutated.Store(true)
					}
				}
			}
		}
		return errResp(req, 87), nil, true
	})
	p, _ := newProducer(t, c, producer.Config{MaxBufferedBytes: 1 << 30})
	tp := client.TopicPartition{Topic: "t", Partition: 0}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		if err := p.SendBatch(context.Background(), tp, build(t, record.None, i, 1), func(_ int64, err error) { wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	// A 64 MiB batch: its write blocks while kfake is stuck on request 1.
	var b record.Builder
	b.Reset(nil, record.NoProducer, nil)
	val := bytes.Repeat([]byte{'a'}, 1<<20)
	for i := 0; i < 64; i++ {
		b.Append(1, nil, val, nil)
	}
	_, big, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	var doneAt atomic.Bool
	if err := p.SendBatch(context.Background(), tp, big, func(_ int64, err error) {
		doneAt.Store(true)
		// The buffer is "the caller's again": reuse it.
		copy(big[len(big)-1<<20:], bytes.Repeat([]byte{'Z'}, 1<<20)) // the tail: not yet on the wire
		wg.Done()
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(release)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Flush(ctx)
	time.Sleep(time.Second)
	t.Logf("requests=%d bigSeen=%v", n.Load(), bigSeen.Load())
	if sawMutated.Load() {
		t.Error("the broker received batch bytes the caller rewrote after done ran")
	}
}
