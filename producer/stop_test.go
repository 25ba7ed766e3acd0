package producer_test

import (
	"context"
	"errors"
	"fmt"
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

// Stop, called while the broker holds the producer's requests (300 ms
// each), returns only once they are answered: the partition's end offset
// does not move after it returned. The batches not sent fail with
// ErrClosed and are not written; the partition holds exactly the batches
// acknowledged, in order, read back by franz-go.
func TestStopWaitsForRequestsInFlight(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	held := make(chan struct{})
	var n atomic.Int32
	k.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		if i := n.Add(1); i >= 4 {
			if i == 4 {
				close(held)
			}
			k.SleepControl(func() { time.Sleep(300 * time.Millisecond) })
		}
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{})
	// End offsets are read on a connection of their own: on the
	// producer's, the answer would queue behind the held requests'.
	cl, err := client.New(context.Background(), c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tp := client.TopicPartition{Topic: "t"}
	const batches = 100
	var acked, stopped atomic.Int32
	var mu sync.Mutex
	var other []error
	var wg sync.WaitGroup
	for b := range batches {
		wg.Add(1)
		err := p.SendBatch(context.Background(), tp, build(t, record.None, b, 10), func(_ int64, err error) {
			defer wg.Done()
			switch {
			case err == nil:
				acked.Add(1)
			case errors.Is(err, producer.ErrClosed):
				stopped.Add(1)
			default:
				mu.Lock()
				other = append(other, err)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	end := func() int64 {
		res, err := cl.ListOffsets(ctx, client.ReadUncommitted, map[client.TopicPartition]int64{tp: client.Latest})
		if err != nil || res[tp].Err != nil {
			t.Fatalf("end offset: %v, %v", err, res[tp].Err)
		}
		return res[tp].Offset
	}
	atStop := end()
	if err := p.SendBatch(ctx, tp, build(t, record.None, batches, 10), nil); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("SendBatch after Stop: %v", err)
	}
	time.Sleep(700 * time.Millisecond)
	if later := end(); later != atStop {
		t.Fatalf("the partition ended at %d when Stop returned, at %d a moment later", atStop, later)
	}
	p.Close()
	wg.Wait()
	if len(other) > 0 || stopped.Load() == 0 || acked.Load()+stopped.Load() != batches {
		t.Fatalf("%d acknowledged, %d failed as stopped, other errors %v", acked.Load(), stopped.Load(), other)
	}
	got := keysByPartition(t, c, "t")[0]
	if fmt.Sprint(got) != fmt.Sprint(expectKeys(int(acked.Load()), 10)) || int64(len(got)) != atStop {
		t.Fatalf("the partition holds %d records (end %d); %d batches of 10 were acknowledged", len(got), atStop, acked.Load())
	}
	t.Logf("FIGURES stop: %d batches acknowledged, %d failed unsent, Stop waited %v for the held requests", acked.Load(), stopped.Load(), took.Round(time.Millisecond))
}
