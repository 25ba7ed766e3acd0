package api

// Benchmark and test fixtures: FetchResponse and ProduceRequest bodies with
// real, CRC-valid v2 record batches, encoded by kmsg so that every
// implementation reads the same bytes.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// testBatch builds an uncompressed v2 record batch of n records with the
// given value size and number of headers per record.
func testBatch(baseOffset int64, n, valueSize, headers int) []byte {
	var recs []byte
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for i := 0; i < n; i++ {
		var body []byte
		body = append(body, 0) // attributes
		body = protocol.AppendVarint(body, int64(i))
		body = protocol.AppendVarint(body, int64(i))
		key := fmt.Appendf(nil, "key-%d", i)
		body = protocol.AppendVarint(body, int64(len(key)))
		body = append(body, key...)
		body = protocol.AppendVarint(body, int64(len(value)))
		body = append(body, value...)
		body = protocol.AppendVarint(body, int64(headers))
		for h := 0; h < headers; h++ {
			hk, hv := fmt.Appendf(nil, "h%d", h), []byte("header-value")
			body = protocol.AppendVarint(body, int64(len(hk)))
			body = append(body, hk...)
			body = protocol.AppendVarint(body, int64(len(hv)))
			body = append(body, hv...)
		}
		recs = protocol.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, 61, 61+len(recs))
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(baseOffset))
	be.PutUint32(b[8:], uint32(49+len(recs)))
	be.PutUint32(b[12:], 0) // partition leader epoch
	b[16] = 2               // magic
	be.PutUint16(b[21:], 0) // attributes
	be.PutUint32(b[23:], uint32(n-1))
	be.PutUint64(b[27:], 1_700_000_000_000)
	be.PutUint64(b[35:], uint64(1_700_000_000_000+n-1))
	be.PutUint64(b[43:], ^uint64(0)) // producer id -1
	be.PutUint16(b[51:], 0xffff)     // producer epoch -1
	be.PutUint32(b[53:], 0xffffffff) // base sequence -1
	be.PutUint32(b[57:], uint32(n))
	b = append(b, recs...)
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

type fetchShape struct {
	name                          string
	topics, partitions, records   int
	valueSize, headers, abortedTx int
}

var fetchShapes = []fetchShape{
	{name: "small", topics: 10, partitions: 3, records: 3, valueSize: 6},
	{name: "wide", topics: 100, partitions: 10, records: 10, valueSize: 100},
	{name: "deep", topics: 1, partitions: 1, records: 1000, valueSize: 100, headers: 2},
}

// fetchResponseBody encodes a FetchResponse body of the shape with kmsg.
func fetchResponseBody(s fetchShape, version int16) []byte {
	r := kmsg.NewFetchResponse()
	r.Version = version
	for t := 0; t < s.topics; t++ {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = fmt.Sprintf("topic-%03d", t)
		rt.TopicID = [16]byte{byte(t), 1, 2, 3}
		for p := 0; p < s.partitions; p++ {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = int32(p)
			rp.HighWatermark = int64(s.records * 10)
			rp.LastStableOffset = int64(s.records * 10)
			rp.LogStartOffset = 0
			for a := 0; a < s.abortedTx; a++ {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = int64(a), int64(a*2)
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
			rp.RecordBatches = testBatch(0, s.records, s.valueSize, s.headers)
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	return r.AppendTo(nil)
}

// produceRequestBody encodes a ProduceRequest of topics x partitions, one
// 10-record batch each, with kmsg.
func produceRequestBody(topics, partitions int, version int16) []byte {
	r := kmsg.NewProduceRequest()
	r.Version = version
	r.Acks = -1
	r.TimeoutMillis = 30000
	for t := 0; t < topics; t++ {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = fmt.Sprintf("topic-%03d", t)
		rt.TopicID = [16]byte{byte(t), 1, 2, 3}
		for p := 0; p < partitions; p++ {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(p)
			rp.Records = testBatch(0, 10, 100, 0)
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	return r.AppendTo(nil)
}
