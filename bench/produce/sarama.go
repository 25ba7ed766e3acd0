package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// sarama: IBM/sarama's AsyncProducer with Return.Successes, a
// *sarama.ProducerMessage taken from a sync.Pool and returned to it when
// its success comes back, and the value wrapped in a ByteEncoder once per
// goroutine. Idempotence in sarama requires Net.MaxOpenRequests = 1, so it
// has one produce request in flight per broker, not 5.

func init() {
	register("sarama", "idempotent sarama allows 1 request in flight (Net.MaxOpenRequests=1), not 5; "+
		"Producer.MaxMessageBytes (1 MiB) bounds a whole request, not each partition's batch", openSarama)
}

type saramaProducer struct {
	ap    sarama.AsyncProducer
	in    chan<- *sarama.ProducerMessage
	topic string
	pool  sync.Pool
	track *tracker
	gs    []saramaGoroutine
	wg    sync.WaitGroup
}

// saramaGoroutine caches one appending goroutine's value encoder, so that
// wrapping the same slice does not allocate on every append.
type saramaGoroutine struct {
	last     []byte
	enc      sarama.Encoder
	appended int64
	_        [64]byte // keep goroutines off each other's cache lines
}

func saramaCodec(name string) (sarama.CompressionCodec, error) {
	switch name {
	case "none":
		return sarama.CompressionNone, nil
	case "gzip":
		return sarama.CompressionGZIP, nil
	case "snappy":
		return sarama.CompressionSnappy, nil
	case "lz4":
		return sarama.CompressionLZ4, nil
	case "zstd":
		return sarama.CompressionZSTD, nil
	}
	return 0, fmt.Errorf("sarama: unknown compression %q", name)
}

func openSarama(_ context.Context, cfg clientConfig) (producer, error) {
	codec, err := saramaCodec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.ClientID = "ktape-bench-sarama"
	sc.Version = sarama.V3_9_0_0
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Flush.Frequency = linger
	sc.Producer.Flush.Bytes = batchMaxBytes
	sc.Producer.MaxMessageBytes = batchMaxBytes
	sc.Producer.Compression = codec
	if cfg.idempotent() {
		sc.Producer.Idempotent = true
		sc.Producer.RequiredAcks = sarama.WaitForAll
		sc.Net.MaxOpenRequests = 1
	} else {
		sc.Producer.RequiredAcks = sarama.WaitForLocal
		sc.Net.MaxOpenRequests = maxInFlight
	}
	ap, err := sarama.NewAsyncProducer(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("sarama: new async producer: %w", err)
	}
	p := &saramaProducer{ap: ap, in: ap.Input(), topic: cfg.Topic, track: newTracker(), gs: make([]saramaGoroutine, cfg.Goroutines)}
	p.pool.New = func() any { return new(sarama.ProducerMessage) }
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for m := range ap.Successes() {
			*m = sarama.ProducerMessage{}
			p.pool.Put(m)
			p.track.report(1, nil)
		}
	}()
	go func() {
		defer p.wg.Done()
		for e := range ap.Errors() {
			p.track.report(1, e)
		}
	}()
	return p, nil
}

func (p *saramaProducer) Append(g int, partition int32, value []byte) error {
	st := &p.gs[g]
	if len(value) != len(st.last) || len(value) > 0 && &value[0] != &st.last[0] || st.enc == nil {
		st.last, st.enc = value, sarama.ByteEncoder(value)
	}
	m := p.pool.Get().(*sarama.ProducerMessage)
	m.Topic, m.Partition, m.Value = p.topic, partition, st.enc
	st.appended++
	p.in <- m
	return nil
}

func (p *saramaProducer) Flush(ctx context.Context) error {
	var appended int64
	for i := range p.gs {
		appended += p.gs[i].appended
	}
	if err := p.track.wait(ctx, appended); err != nil {
		return fmt.Errorf("sarama: %w", err)
	}
	return nil
}

func (p *saramaProducer) Close() error {
	err := p.ap.Close()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("sarama: close: %w", err)
	}
	return nil
}
