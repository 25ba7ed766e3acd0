package restore

import (
	"context"
	"sync"
	"time"
)

// limiter paces sends to a rate in bytes per second, shared by every
// partition worker. Each send reserves its bytes' time slot; a send waits
// until its slot starts, so the rate holds over any stretch longer than
// one batch. A nil limiter does not limit.
type limiter struct {
	mu   sync.Mutex
	rate float64   // bytes per second
	next time.Time // when the next slot starts
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &limiter{rate: float64(bytesPerSec)}
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
