package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/ktape/ktape/client"
	kproducer "github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/record"
)

// ktape: producer.Append, the wait-free record-append path: each record is
// copied once into its partition's batch buffer with one atomic add to
// claim the space; failures come back through Config.OnError. Buffered
// memory is bounded in bytes (128 MiB), not records. Batches are ktape's
// default 256 KiB rather than 1 MiB: its batch buffers are preallocated
// and written in place, so their size sets the cache footprint (1 MiB
// measured 25% slower at 16 partitions).

func init() {
	register("ktape", "", openKtape)
}

type ktapeProducer struct {
	c     *client.Client
	p     *kproducer.Producer
	topic string

	mu    sync.Mutex
	first error
}

func openKtape(ctx context.Context, cfg clientConfig) (producer, error) {
	codec, ok := map[string]record.Codec{"none": record.None, "gzip": record.Gzip, "snappy": record.Snappy, "lz4": record.LZ4, "zstd": record.Zstd}[cfg.Compression]
	if !ok {
		return nil, fmt.Errorf("ktape: unknown compression %q", cfg.Compression)
	}
	c, err := client.New(ctx, cfg.Brokers, nil)
	if err != nil {
		return nil, fmt.Errorf("ktape: %w", err)
	}
	kp := &ktapeProducer{c: c, topic: cfg.Topic}
	pcfg := kproducer.Config{
		Linger:           linger,
		Compression:      codec,
		MaxInFlight:      maxInFlight,
		MaxBufferedBytes: 128 << 20,
		OnError: func(tp client.TopicPartition, err error) {
			kp.mu.Lock()
			if kp.first == nil {
				kp.first = fmt.Errorf("ktape: %s: %w", tp, err)
			}
			kp.mu.Unlock()
		},
	}
	if !cfg.idempotent() {
		pcfg.Acks, pcfg.NotIdempotent = 1, true
	}
	if kp.p, err = kproducer.New(ctx, c, pcfg); err != nil {
		c.Close()
		return nil, fmt.Errorf("ktape: %w", err)
	}
	return kp, nil
}

func (p *ktapeProducer) Append(_ int, partition int32, value []byte) error {
	_, err := p.p.Append(context.Background(), p.topic, partition, nil, value)
	return err
}

func (p *ktapeProducer) Flush(ctx context.Context) error {
	if err := p.p.Flush(ctx); err != nil {
		return fmt.Errorf("ktape: flush: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

func (p *ktapeProducer) Close() error {
	p.p.Close()
	p.c.Close()
	return nil
}
