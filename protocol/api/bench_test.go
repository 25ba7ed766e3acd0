package api

import (
	"fmt"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sink keeps results alive so the compiler cannot drop the work.
var sink struct {
	n   int64
	b   []byte
	err error
}

// fetchVisit is what every FetchDecode implementation reports per message:
// enough to prove it visited every field the benchmark asks for.
type fetchVisit struct {
	topics, partitions, aborted int
	sum                         int64 // partition, error codes, watermarks, aborted ids
	recordBytes                 int
}

func visitKtapeFetch(d *protocol.Decoder, v int16, body []byte) (fetchVisit, error) {
	var out fetchVisit
	r, err := DecodeFetchResponse(d, v, body)
	if err != nil {
		return out, err
	}
	out.sum += int64(r.ErrorCode())
	topics := r.Topics()
	for i := 0; i < topics.Len(); i++ {
		t := topics.At(i)
		out.topics++
		out.recordBytes += len(t.Name())
		parts := t.Partitions()
		for j := 0; j < parts.Len(); j++ {
			p := parts.At(j)
			out.partitions++
			out.sum += int64(p.Partition()) + int64(p.ErrorCode()) + p.HighWatermark() + p.LastStableOffset() + p.LogStartOffset()
			ab := p.AbortedTransactions()
			for k := 0; k < ab.Len(); k++ {
				pid, first := ab.At(k)
				out.aborted++
				out.sum += pid + first
			}
			out.recordBytes += len(p.Records())
		}
	}
	return out, nil
}

func visitKmsgFetch(v int16, body []byte) (fetchVisit, error) {
	var out fetchVisit
	r := kmsg.NewPtrFetchResponse()
	r.Version = v
	if err := r.ReadFrom(body); err != nil {
		return out, err
	}
	out.sum += int64(r.ErrorCode)
	for i := range r.Topics {
		t := &r.Topics[i]
		out.topics++
		out.recordBytes += len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			out.partitions++
			out.sum += int64(p.Partition) + int64(p.ErrorCode) + p.HighWatermark + p.LastStableOffset + p.LogStartOffset
			for _, a := range p.AbortedTransactions {
				out.aborted++
				out.sum += a.ProducerID + a.FirstOffset
			}
			out.recordBytes += len(p.RecordBatches)
		}
	}
	return out, nil
}

// TestFetchVisitorsAgree makes sure the benchmarked visitors do the same
// work and get the same answers.
func TestFetchVisitorsAgree(t *testing.T) {
	for _, s := range fetchShapes {
		for _, v := range []int16{4, 11, 12, 16, 18} {
			s := s
			s.abortedTx = 2
			body := fetchResponseBody(s, v)
			var d protocol.Decoder
			got, err := visitKtapeFetch(&d, v, body)
			if err != nil {
				t.Fatal(err)
			}
			want, err := visitKmsgFetch(v, body)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s v%d: ktape %+v, kmsg %+v", s.name, v, got, want)
			}
		}
	}
}

func BenchmarkFetchDecode(b *testing.B) {
	for _, s := range fetchShapes {
		for _, v := range []int16{11, 16} {
			body := fetchResponseBody(s, v)
			name := fmt.Sprintf("%s/v%d", s.name, v)
			b.Run(name+"/ktape", func(b *testing.B) {
				var d protocol.Decoder
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					out, err := visitKtapeFetch(&d, v, body)
					sink.n += out.sum
					sink.err = err
				}
			})
			b.Run(name+"/kmsg", func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					out, err := visitKmsgFetch(v, body)
					sink.n += out.sum
					sink.err = err
				}
			})
			// sarama decodes Fetch only up to v12, and only through a
			// Broker: its figure includes a request encode and a round trip
			// over an in-memory conn (~4 us) and it parses every record.
			if visit, err := saramaFetchVisitor(b, v, body); err == nil {
				b.Run(name+"/sarama", func(b *testing.B) {
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					for b.Loop() {
						out, err := visit()
						sink.n += out.sum
						sink.err = err
					}
				})
			}
		}
	}
}

// produceVersion is the ProduceRequest version of the produce benchmarks:
// the newest that still names topics (v13 uses topic ids).
const produceVersion = 12

type produceVisit struct {
	topics, partitions int
	sum                int64
	recordBytes        int
}

var produceReq = struct {
	topicData, name, partitionData, index, records protocol.Handle
}{}

func init() {
	r := Produce.Request
	produceReq.topicData = r.Handle("TopicData")
	t := r.Child(produceReq.topicData)
	produceReq.name, produceReq.partitionData = t.Handle("Name"), t.Handle("PartitionData")
	p := t.Child(produceReq.partitionData)
	produceReq.index, produceReq.records = p.Handle("Index"), p.Handle("Records")
}

func visitKtapeProduce(d *protocol.Decoder, v int16, body []byte) (produceVisit, error) {
	var out produceVisit
	r, err := d.Decode(Produce.Request, v, body)
	if err != nil {
		return out, err
	}
	topics := r.Array(produceReq.topicData)
	for i := 0; i < topics.Len(); i++ {
		t := topics.At(i)
		out.topics++
		out.recordBytes += len(t.StringBytes(produceReq.name))
		parts := t.Array(produceReq.partitionData)
		for j := 0; j < parts.Len(); j++ {
			p := parts.At(j)
			out.partitions++
			out.sum += int64(p.Int32(produceReq.index))
			out.recordBytes += len(p.Records(produceReq.records))
		}
	}
	return out, nil
}

func visitKmsgProduce(v int16, body []byte) (produceVisit, error) {
	var out produceVisit
	r := kmsg.NewPtrProduceRequest()
	r.Version = v
	if err := r.ReadFrom(body); err != nil {
		return out, err
	}
	for i := range r.Topics {
		t := &r.Topics[i]
		out.topics++
		out.recordBytes += len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			out.partitions++
			out.sum += int64(p.Partition)
			out.recordBytes += len(p.Records)
		}
	}
	return out, nil
}

func TestProduceVisitorsAgree(t *testing.T) {
	body := produceRequestBody(16, 8, produceVersion)
	var d protocol.Decoder
	got, err := visitKtapeProduce(&d, produceVersion, body)
	if err != nil {
		t.Fatal(err)
	}
	want, err := visitKmsgProduce(produceVersion, body)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got.partitions != 128 {
		t.Fatalf("ktape %+v, kmsg %+v", got, want)
	}
}

func BenchmarkProduceEncode(b *testing.B) {
	body := produceRequestBody(16, 8, produceVersion)
	b.Run("ktape", func(b *testing.B) {
		rec, err := protocol.Decode(Produce.Request, produceVersion, body)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			buf, sink.err = rec.AppendTo(buf[:0], produceVersion)
		}
		sink.b = buf
	})
	b.Run("kmsg", func(b *testing.B) {
		req := kmsg.NewPtrProduceRequest()
		req.Version = produceVersion
		if err := req.ReadFrom(body); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			buf = req.AppendTo(buf[:0])
		}
		sink.b = buf
	})
	// sarama cannot send pre-encoded batches: it re-encodes every record
	// and its CRC, at Produce v9, through a Broker over an in-memory conn.
	b.Run("sarama", func(b *testing.B) {
		encode, _, err := saramaProduceEncoder(b, 16, 8, testBatch(0, 10, 100, 0))
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			sink.err = encode()
		}
	})
}

func BenchmarkProduceDecode(b *testing.B) {
	body := produceRequestBody(16, 8, produceVersion)
	b.Run("ktape", func(b *testing.B) {
		var d protocol.Decoder
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			out, err := visitKtapeProduce(&d, produceVersion, body)
			sink.n += out.sum
			sink.err = err
		}
	})
	b.Run("kmsg", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			out, err := visitKmsgProduce(produceVersion, body)
			sink.n += out.sum
			sink.err = err
		}
	})
}
