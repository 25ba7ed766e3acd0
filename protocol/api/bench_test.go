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
		}
	}
}
