package source

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// markerLen is the size of the placeholder records field; any size below
// 63 keeps the placeholder's compact length prefix at one byte.
const markerLen = 16

// Fetch field handles, resolved once.
var fh = func() (h struct {
	maxWait, maxBytes, sessionID, sessionEpoch, topics                protocol.Handle
	topic, topicID, parts, partition, offset, partMax                 protocol.Handle
	rThrottle, rErr, rSession, rTopics, rTopic, rTopicID, rParts      protocol.Handle
	rIndex, rPErr, rHWM, rLSO, rLogStart, rAborted, rPreferred, rRecs protocol.Handle
}) {
	q := api.Fetch.Request
	h.maxWait, h.maxBytes, h.topics = q.Handle("MaxWaitMs"), q.Handle("MaxBytes"), q.Handle("Topics")
	h.sessionID, h.sessionEpoch = q.Handle("SessionId"), q.Handle("SessionEpoch")
	qt := q.Child(h.topics)
	h.topic, h.topicID, h.parts = qt.Handle("Topic"), qt.Handle("TopicId"), qt.Handle("Partitions")
	qp := qt.Child(h.parts)
	h.partition, h.offset, h.partMax = qp.Handle("Partition"), qp.Handle("FetchOffset"), qp.Handle("PartitionMaxBytes")
	r := api.Fetch.Response
	h.rThrottle, h.rErr, h.rSession, h.rTopics = r.Handle("ThrottleTimeMs"), r.Handle("ErrorCode"), r.Handle("SessionId"), r.Handle("Responses")
	rt := r.Child(h.rTopics)
	h.rTopic, h.rTopicID, h.rParts = rt.Handle("Topic"), rt.Handle("TopicId"), rt.Handle("Partitions")
	rp := rt.Child(h.rParts)
	h.rIndex, h.rPErr, h.rHWM = rp.Handle("PartitionIndex"), rp.Handle("ErrorCode"), rp.Handle("HighWatermark")
	h.rLSO, h.rLogStart, h.rAborted = rp.Handle("LastStableOffset"), rp.Handle("LogStartOffset"), rp.Handle("AbortedTransactions")
	h.rPreferred, h.rRecs = rp.Handle("PreferredReadReplica"), rp.Handle("Records")
	return h
}()

// partPlan is one partition of a Fetch response: what it says and which
// batches it carries.
type partPlan struct {
	partition int32
	code      int16
	hwm       int64
	first, n  int // batches [first, first+n) of the partition
	bytes     int
}

// fetch answers a Fetch: it picks the batches within the request's
// limits, encodes the response with placeholders for the records fields,
// and splices the batches in as separate segments of one vectored write.
func (s *Server) fetch(c *conn, ver int16, corr int32, body []byte) error {
	if s.cfg.FetchDelay > 0 {
		time.Sleep(s.cfg.FetchDelay)
	}
	v, err := c.dec.Decode(api.Fetch.Request, ver, body)
	if err != nil {
		return fmt.Errorf("Fetch v%d: %w", ver, err)
	}
	defer c.dec.Reset()
	t := s.topic
	r := protocol.NewRecord(api.Fetch.Response)
	r.Set(fh.rThrottle, int32(0))
	if ver >= 7 {
		// No sessions are kept: a full fetch asking for a new one (epoch
		// 0) gets id 0, "no session"; a full fetch without one (-1) too.
		// An incremental fetch names a session that cannot exist.
		if id, epoch := v.Int32(fh.sessionID), v.Int32(fh.sessionEpoch); id != 0 || (epoch != 0 && epoch != -1) {
			r.Set(fh.rErr, errFetchSessionNotFound).Set(fh.rSession, int32(0))
			return s.respond(c, r, ver, corr)
		}
		r.Set(fh.rErr, int16(0)).Set(fh.rSession, int32(0))
	}
	remaining := math.MaxInt32
	if ver >= 3 {
		remaining = int(v.Int32(fh.maxBytes))
	}
	c.plan = c.plan[:0]
	total, nBatches := 0, 0
	topics := v.Array(fh.topics)
	for i := 0; i < topics.Len(); i++ {
		qt := topics.At(i)
		tr := r.Append(fh.rTopics)
		known := false
		if ver >= 13 {
			id := qt.UUID(fh.topicID)
			tr.Set(fh.rTopicID, id)
			known = id == t.ID()
		} else {
			name := qt.StringBytes(fh.topic)
			tr.Set(fh.rTopic, string(name))
			known = string(name) == t.Name()
		}
		parts := qt.Array(fh.parts)
		for j := 0; j < parts.Len(); j++ {
			qp := parts.At(j)
			pl := partPlan{partition: qp.Int32(fh.partition), hwm: -1}
			switch p := int(pl.partition); {
			case !known && ver >= 13:
				pl.code = errUnknownTopicID
			case !known || p < 0 || p >= t.NumPartitions():
				pl.code = errUnknownTopicOrPart
			default:
				pl.hwm = t.HighWatermark(p)
				off := qp.Int64(fh.offset)
				if off < 0 || off > pl.hwm {
					pl.code = errOffsetOutOfRange
					break
				}
				pl.first = int(off / t.perB)
				limit := min(int(qp.Int32(fh.partMax)), remaining)
				if s.cfg.PartitionMaxBytes > 0 {
					limit = min(limit, s.cfg.PartitionMaxBytes)
				}
				for pl.first+pl.n < t.NumBatches(p) {
					l := t.poolBatchLen(t.poolIndex(p, pl.first+pl.n))
					// KIP-74: the first batch of a response goes out even
					// if it is larger than the limits, so a client can
					// always make progress.
					if pl.bytes+l > limit && (total > 0 || pl.n > 0) {
						break
					}
					pl.bytes += l
					pl.n++
				}
				remaining = max(0, remaining-pl.bytes)
				total += pl.bytes
				nBatches += pl.n
			}
			pr := tr.Append(fh.rParts).Set(fh.rIndex, pl.partition).Set(fh.rPErr, pl.code).
				Set(fh.rHWM, pl.hwm).Set(fh.rLSO, pl.hwm).Set(fh.rLogStart, int64(0))
			if ver >= 11 {
				pr.Set(fh.rPreferred, int32(-1))
			}
			if pl.n > 0 {
				pr.Set(fh.rRecs, s.marker)
			} else {
				pr.Set(fh.rRecs, []byte{})
			}
			c.plan = append(c.plan, pl)
		}
	}
	s.fetches.Add(1)
	if total == 0 {
		// The topic never grows: waiting out MaxWaitMs would bring
		// nothing but a slower end for the client (see the package doc).
		if wait := min(time.Duration(v.Int32(fh.maxWait))*time.Millisecond, s.cfg.IdleWait); wait > 0 {
			time.Sleep(wait)
		}
		return s.respond(c, r, ver, corr)
	}
	out, err := protocol.AppendResponse(c.out[:0], r, ver, corr)
	if err != nil {
		return fmt.Errorf("encode Fetch v%d response: %w", ver, err)
	}
	c.out = out
	if err := s.splice(c, ver, nBatches); err != nil {
		return fmt.Errorf("Fetch v%d response: %w", ver, err)
	}
	s.batches.Add(int64(nBatches))
	s.bytes.Add(int64(total))
	return nil
}

// splice turns the encoded response in c.out, whose records fields with
// data hold s.marker, into the segments of the real response: runs of
// envelope bytes with each records field's real length prefix and each
// batch's base offset (copied into c.glue), and between them the batches'
// bytes from the topic's memory. c.plan says, in response order, which
// partitions carry which batches.
func (s *Server) splice(c *conn, ver int16, nBatches int) error {
	flexible := api.Fetch.IsFlexible(ver)
	oldPrefix := 4 // int32 length
	if flexible {
		oldPrefix = 1 // compact: uvarint(markerLen+1)
	}
	out := c.out
	// The glue never grows past this, so the segments cut from it stay
	// valid while it is filled.
	need := len(out) + 5*len(c.plan) + 8*nBatches
	if cap(c.glue) < need {
		c.glue = make([]byte, 0, need)
	}
	glue := c.glue[:0]
	size := len(out) - 4
	pos, cut := 0, 0 // pos: next byte of out to copy; cut: glue not yet in a segment
	t := s.topic
	for i := range c.plan {
		pl := &c.plan[i]
		if pl.n == 0 {
			continue
		}
		at := bytes.Index(out[pos:], s.marker)
		if at < 0 {
			return fmt.Errorf("partition %d: records placeholder not found", pl.partition)
		}
		at += pos
		if at-oldPrefix < pos || !placeholderPrefix(out[at-oldPrefix:at], flexible) {
			return fmt.Errorf("partition %d: records placeholder without its length prefix", pl.partition)
		}
		glue = append(glue, out[pos:at-oldPrefix]...)
		before := len(glue)
		if flexible {
			glue = protocol.AppendUvarint(glue, uint64(pl.bytes)+1)
		} else {
			glue = binary.BigEndian.AppendUint32(glue, uint32(pl.bytes))
		}
		size += len(glue) - before - oldPrefix + pl.bytes - markerLen
		for k := range pl.n {
			base, rest := t.Batch(int(pl.partition), pl.first+k)
			glue = binary.BigEndian.AppendUint64(glue, uint64(base))
			c.bufs = append(c.bufs, glue[cut:len(glue):len(glue)], rest)
			cut = len(glue)
		}
		pos = at + markerLen
	}
	glue = append(glue, out[pos:]...)
	c.bufs = append(c.bufs, glue[cut:len(glue):len(glue)])
	if size > math.MaxInt32 {
		return fmt.Errorf("response of %d bytes", size)
	}
	binary.BigEndian.PutUint32(glue[0:4], uint32(size))
	c.glue = glue
	return nil
}

// placeholderPrefix reports whether b is the length prefix of a
// markerLen-byte records field.
func placeholderPrefix(b []byte, flexible bool) bool {
	if flexible {
		return len(b) == 1 && b[0] == markerLen+1
	}
	return len(b) == 4 && binary.BigEndian.Uint32(b) == markerLen
}
