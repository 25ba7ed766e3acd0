package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgo: franz-go's Client.Produce with a *kgo.Record taken from a sync.Pool
// and returned to it by the promise, the allocation-light way to use it.
// Idempotence is kgo's default; with it kgo keeps up to 5 requests in
// flight per broker on its own.

func init() {
	register("kgo", "", openKgo)
}

type kgoProducer struct {
	cl      *kgo.Client
	topic   string
	pool    sync.Pool
	promise func(*kgo.Record, error)

	mu    sync.Mutex
	first error
}

func kgoCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kgo: unknown compression %q", name)
}

func openKgo(_ context.Context, cfg clientConfig) (producer, error) {
	codec, err := kgoCodec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("ktape-bench-kgo"),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchMaxBytes(batchMaxBytes),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(maxBufferedRecs),
	}
	if cfg.idempotent() {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(maxInFlight))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kgo: new client: %w", err)
	}
	p := &kgoProducer{cl: cl, topic: cfg.Topic}
	p.pool.New = func() any { return new(kgo.Record) }
	p.promise = func(r *kgo.Record, err error) {
		if err != nil {
			p.mu.Lock()
			if p.first == nil {
				p.first = err
			}
			p.mu.Unlock()
		}
		*r = kgo.Record{}
		p.pool.Put(r)
	}
	return p, nil
}

func (p *kgoProducer) Append(_ int, partition int32, value []byte) error {
	r := p.pool.Get().(*kgo.Record)
	r.Topic, r.Partition, r.Value = p.topic, partition, value
	p.cl.Produce(context.Background(), r, p.promise)
	return nil
}

func (p *kgoProducer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kgo: flush: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

func (p *kgoProducer) Close() error {
	p.cl.Close()
	return nil
}
