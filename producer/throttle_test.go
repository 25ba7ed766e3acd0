package producer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker over its quota answers at once with a throttle time and
// expects the client to wait it out before its next request (KIP-219,
// Produce v6+). The producer sends nothing more to that broker until the
// throttle ends, counts the pause, and the data arrives whole, in order,
// read back by franz-go.
func TestThrottleHonoured(t *testing.T) {
	const throttle = 700 * time.Millisecond
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	k := c.Kfake()
	var (
		mu       sync.Mutex
		arrivals []time.Time
		version  int16
	)
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		if len(arrivals) == 1 {
			// Refused, so nothing is written, and throttled.
			version = req.GetVersion()
			resp := errResp(req, 19).(*kmsg.ProduceResponse) // NOT_ENOUGH_REPLICAS
			resp.ThrottleMillis = int32(throttle / time.Millisecond)
			return resp, nil, true
		}
		return nil, nil, false
	})
	p, _ := newProducer(t, c, producer.Config{Backoff: client.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}})
	tp := client.TopicPartition{Topic: "t", Partition: 0}
	wg := sendAll(t, p, tp, record.Snappy, 20, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	k.DropControl()
	mu.Lock()
	defer mu.Unlock()
	if version < 6 {
		t.Fatalf("Produce v%d: the test needs v6 or later", version)
	}
	if len(arrivals) < 2 {
		t.Fatalf("%d produce requests", len(arrivals))
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < throttle {
		t.Errorf("the next request came %v after a throttle of %v", gap, throttle)
	}
	st := p.Stats()
	// The pause starts once the response is read and ends when the
	// timer fires: about the throttle time.
	if st.Throttles != 1 || st.Throttled < throttle/2 || st.Throttled > throttle+time.Second {
		t.Errorf("stats: %d throttles, %v throttled; want 1, about %v", st.Throttles, st.Throttled, throttle)
	}
	if got, want := fmt.Sprint(keysByPartition(t, c, "t")[0]), fmt.Sprint(expectKeys(20, 5)); got != want {
		t.Fatalf("read back %s, want %s", got, want)
	}
}
