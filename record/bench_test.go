package record_test

import (
	"fmt"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var sink int64

type shape struct {
	name                        string
	topics, partitions, records int
	valueSize, headers          int
}

var shapes = []shape{
	{"small", 10, 3, 3, 6, 0},
	{"wide", 100, 10, 10, 100, 0},
	{"deep", 1, 1, 1000, 100, 2},
}

func batchFor(s shape, c record.Codec) []byte {
	var b record.Builder
	h := record.NoProducer
	h.Codec = c
	b.Reset(nil, h, nil)
	value := make([]byte, s.valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var hdrs []record.Header
	for i := 0; i < s.headers; i++ {
		hdrs = append(hdrs, record.Header{Key: []byte(fmt.Sprintf("h%d", i)), Value: []byte("header-value")})
	}
	for i := 0; i < s.records; i++ {
		b.Append(1_700_000_000_000+int64(i), []byte(fmt.Sprintf("key-%d", i)), value, hdrs)
	}
	out, _, err := b.Finish()
	if err != nil {
		panic(err)
	}
	return out
}

// fetchBody encodes a FetchResponse v11 of the shape with kmsg.
func fetchBody(s shape, c record.Codec) []byte {
	batch := batchFor(s, c)
	r := kmsg.NewFetchResponse()
	r.Version = 11
	for t := 0; t < s.topics; t++ {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = fmt.Sprintf("topic-%03d", t)
		for p := 0; p < s.partitions; p++ {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = int32(p)
			rp.HighWatermark = int64(s.records)
			rp.RecordBatches = batch
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	return r.AppendTo(nil)
}

type recordVisit struct{ records, bytes int64 }

func visitKtape(d *protocol.Decoder, r *record.Reader, body []byte) (recordVisit, error) {
	var v recordVisit
	resp, err := api.DecodeFetchResponse(d, 11, body)
	if err != nil {
		return v, err
	}
	topics := resp.Topics()
	for i := 0; i < topics.Len(); i++ {
		parts := topics.At(i).Partitions()
		for j := 0; j < parts.Len(); j++ {
			it := record.NewIter(parts.At(j).Records())
			for it.Next() {
				ri, err := r.Records(it.Batch())
				if err != nil {
					return v, err
				}
				for ri.Next() {
					rec := ri.Record()
					v.records++
					v.bytes += int64(len(rec.Key) + len(rec.Value))
					hs := rec.Headers()
					for hs.Next() {
						v.bytes += int64(len(hs.Key()) + len(hs.Value()))
					}
				}
				if err := ri.Err(); err != nil {
					return v, err
				}
			}
		}
	}
	return v, nil
}

// visitKmsg decodes with kmsg the way a franz-go consumer does: the
// response, then each RecordBatch, then each Record. kmsg does not
// decompress; kgo uses the same klauspost/pierrec libraries, so a
// record.Decompressor stands in for its decompression.
func visitKmsg(d *record.Decompressor, buf *[]byte, body []byte) (recordVisit, error) {
	var v recordVisit
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		return v, err
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			data := resp.Topics[i].Partitions[j].RecordBatches
			for len(data) > 0 {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(data); err != nil {
					return v, err
				}
				data = data[12+batch.Length:]
				recs := batch.Records
				if c := record.Codec(batch.Attributes & 7); c != record.None {
					var err error
					if *buf, err = d.Decompress(*buf, c, recs); err != nil {
						return v, err
					}
					recs = *buf
				}
				krs := make([]kmsg.Record, batch.NumRecords)
				for k := range krs {
					kr := &krs[k]
					if err := kr.ReadFrom(recs); err != nil {
						return v, err
					}
					recs = recs[recordSize(kr):]
					v.records++
					v.bytes += int64(len(kr.Key) + len(kr.Value))
					for _, h := range kr.Headers {
						v.bytes += int64(len(h.Key) + len(h.Value))
					}
				}
			}
		}
	}
	return v, nil
}

// recordSize is the encoded size of a record kmsg just read: its length
// varint plus its length.
func recordSize(r *kmsg.Record) int {
	return len(protocol.AppendVarint(nil, int64(r.Length))) + int(r.Length)
}

func TestFetchRecordVisitorsAgree(t *testing.T) {
	for _, s := range shapes {
		for _, c := range []record.Codec{record.None, record.Zstd} {
			body := fetchBody(s, c)
			var d protocol.Decoder
			var r record.Reader
			got, err := visitKtape(&d, &r, body)
			if err != nil {
				t.Fatal(err)
			}
			var dec record.Decompressor
			var buf []byte
			want, err := visitKmsg(&dec, &buf, body)
			if err != nil {
				t.Fatal(err)
			}
			if got != want || got.records != int64(s.topics*s.partitions*s.records) {
				t.Fatalf("%s/%s: ktape %+v, kmsg %+v", s.name, c, got, want)
			}
		}
	}
}

func BenchmarkFetchRecords(b *testing.B) {
	type bcase struct {
		name  string
		s     shape
		codec record.Codec
	}
	var cases []bcase
	for _, s := range shapes {
		cases = append(cases, bcase{s.name, s, record.None})
	}
	for _, c := range []record.Codec{record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		cases = append(cases, bcase{"deep-" + c.String(), shapes[2], c})
	}
	for _, bc := range cases {
		body := fetchBody(bc.s, bc.codec)
		n := int64(bc.s.topics * bc.s.partitions * bc.s.records)
		b.Run(bc.name+"/ktape", func(b *testing.B) {
			var d protocol.Decoder
			var r record.Reader
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				v, _ := visitKtape(&d, &r, body)
				sink += v.bytes
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/record")
		})
		b.Run(bc.name+"/kmsg", func(b *testing.B) {
			var d record.Decompressor
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				v, _ := visitKmsg(&d, &buf, body)
				sink += v.bytes
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/record")
		})
	}
}

func BenchmarkBatchRewrite(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		s := shape{records: size / 110, valueSize: 100}
		batch := record.Batch(batchFor(s, record.None))
		name := fmt.Sprintf("%dKiB", size>>10)
		p := record.ProducerState{ProducerID: 1, ProducerEpoch: 2, BaseSequence: 3}
		b.Run(name+"/incremental", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.BaseSequence = int32(i)
				batch.SetProducer(p)
				batch.SetBaseOffset(int64(i))
			}
		})
		b.Run(name+"/recompute", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.BaseSequence = int32(i)
				batch.SetProducer(p)
				batch.SetBaseOffset(int64(i))
				batch.RecomputeCRC()
			}
		})
		if batch.CRC() != batch.ComputeCRC() {
			b.Fatal("CRC wrong after rewrites")
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	key, value := []byte("key-000000"), make([]byte, 100)
	for i := range value {
		value[i] = byte(i)
	}
	hdrs := []record.Header{{Key: []byte("trace"), Value: []byte("abc")}}
	const perBatch = 1000
	for _, c := range []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			var bl record.Builder
			var z record.Compressor
			buf := make([]byte, 0, 256<<10)
			h := record.NoProducer
			h.Codec = c
			b.ReportAllocs()
			for b.Loop() {
				bl.Reset(buf[:0], h, &z)
				for i := 0; i < perBatch; i++ {
					bl.Append(int64(i), key, value, hdrs)
				}
				buf, _, _ = bl.Finish()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/record")
		})
	}
}
