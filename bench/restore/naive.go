package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// naiveInFlight is how many Produce requests the naive sender keeps
// unanswered.
const naiveInFlight = 16

// replayNaive is a restore from a local repository written the obvious
// way on ktape's protocol layer, to show what the restore engine's design
// is worth: it reads each of the newest backup's plain segments whole,
// through the page cache, into one reused buffer, then sends each stored
// batch, untouched but for its base offset (zeroed, as brokers want; the
// CRC does not cover it), in a Produce request of its own (acks=1, 16 in
// flight), nothing checked, no producer id. Reading and sending take
// turns. It is not a ceiling: ktape, reading with direct I/O ahead of its
// sends, beats it.
func replayNaive(ctx context.Context, brokers []string, topic, dir string) (childResult, error) {
	var res childResult
	st, err := storage.OpenExisting(ctx, dir)
	if err != nil {
		return res, fmt.Errorf("naive: %w", err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return res, fmt.Errorf("naive: %w", err)
	}
	ids, err := r.Backups(ctx)
	if err != nil || len(ids) == 0 {
		return res, fmt.Errorf("naive: no backup in %s (%v)", dir, err)
	}
	m, err := r.Manifest(ctx, ids[len(ids)-1])
	if err != nil {
		return res, fmt.Errorf("naive: %w", err)
	}
	c, err := client.New(ctx, brokers, nil)
	if err != nil {
		return res, fmt.Errorf("naive: connect: %w", err)
	}
	defer c.Close()
	md, err := c.RefreshMetadata(ctx, []string{topic})
	if err != nil {
		return res, fmt.Errorf("naive: metadata: %w", err)
	}
	tm := md.Topics[topic]
	if tm == nil || tm.Err != nil || len(tm.Partitions) == 0 {
		return res, fmt.Errorf("naive: topic %s not found", topic)
	}
	type begun struct {
		call *client.Call
		v    int16
	}
	calls := make(chan begun, naiveInFlight)
	waited := make(chan error, 1)
	go func() {
		var first error
		var d protocol.Decoder
		for b := range calls {
			resp, err := b.call.Wait(ctx)
			if err == nil {
				var r api.ProduceResponseView
				if r, err = api.DecodeProduceResponse(&d, b.v, resp.Body); err == nil {
					for i := 0; i < r.NumTopics(); i++ {
						for j := 0; j < r.Topic(i).NumPartitions(); j++ {
							if code := r.Topic(i).Partition(j).ErrorCode(); code != 0 && err == nil {
								err = fmt.Errorf("naive: partition %d: %w", r.Topic(i).Partition(j).Index(), protocol.ErrorForCode(code))
							}
						}
					}
				}
				resp.Release()
			}
			if err != nil && first == nil {
				first = err
			}
		}
		waited <- first
	}()
	conns := map[int32]*client.Conn{}
	send := func(partition int32, b []byte) error {
		if int(partition) >= len(tm.Partitions) {
			return fmt.Errorf("naive: %s has no partition %d", topic, partition)
		}
		leader := tm.Partitions[partition].Leader
		conn := conns[leader]
		if conn == nil {
			var err error
			if conn, err = c.BrokerConn(ctx, leader); err != nil {
				return err
			}
			conns[leader] = conn
		}
		v, err := conn.Version(api.Produce)
		if err != nil {
			return err
		}
		s := api.Produce.Request
		req := protocol.NewRecord(s).SetName("TransactionalId", nil).SetName("Acks", int16(1)).SetName("TimeoutMs", int32(30000))
		t := req.Append(s.Handle("TopicData")).SetName("Name", topic).SetName("TopicId", tm.ID)
		t.Append(t.Schema().Handle("PartitionData")).SetName("Index", partition).SetName("Records", b)
		call, err := conn.Begin(ctx, req, v, 30*time.Second)
		if err != nil {
			return err
		}
		calls <- begun{call, v}
		return nil
	}
	var buf []byte
	var sendErr error
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			for _, ref := range p.Segments {
				if ref.Compression != "none" {
					sendErr = fmt.Errorf("naive: %s is %s-framed; the naive sender reads plain segments", ref.Key, ref.Compression)
					break
				}
				f, err := os.Open(filepath.Join(dir, filepath.FromSlash(ref.Key)))
				if err != nil {
					sendErr = fmt.Errorf("naive: %w", err)
					break
				}
				fi, err := f.Stat()
				if err == nil {
					// Begin has written a request's bytes when it
					// returns, so the buffer is free for the next file.
					if int64(cap(buf)) < fi.Size() {
						buf = make([]byte, fi.Size())
					}
					buf = buf[:fi.Size()]
					_, err = f.ReadAt(buf, 0)
				}
				f.Close()
				if err != nil {
					sendErr = fmt.Errorf("naive: %s: %w", ref.Key, err)
					break
				}
				it := record.NewIter(buf)
				for it.Next() && sendErr == nil {
					b := it.Batch()
					b.SetBaseOffset(0) // brokers refuse others; the CRC does not cover it
					if sendErr = send(p.Partition, b); sendErr == nil {
						res.Records += int64(b.NumRecords())
					}
				}
				if sendErr == nil && it.Err() != nil {
					sendErr = fmt.Errorf("naive: %s: %w", ref.Key, it.Err())
				}
			}
		}
	}
	close(calls)
	if err := <-waited; sendErr == nil {
		sendErr = err
	}
	return res, sendErr
}
