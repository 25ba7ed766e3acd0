package sink

import (
	"encoding/binary"
	"fmt"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
)

// Kafka error codes the sink answers with.
const (
	errCorruptMessage      int16 = 2
	errUnknownTopicOrPart  int16 = 3
	errUnsupportedVersion  int16 = 35
	errTopicAlreadyExists  int16 = 36
	errInvalidPartitions   int16 = 37
	errUnknownTopicID      int16 = 100
	nodeID                 int32 = 1
	clusterID                    = "ktape-sink"
	apiVersionsFallbackVer int16 = 0
)

// advertised lists the APIs and versions ApiVersions announces: every
// version ktape declares. Two are announced only for what librdkafka infers
// from them, and not served: Fetch, since librdkafka enables record batches
// v2 (its MsgVer2 feature) only if the broker supports Produce v3 and Fetch
// v4, and otherwise sends legacy message sets; and FindCoordinator, since
// librdkafka enables lz4 only if the broker supports it (a proxy for Kafka
// 0.8.2). librdkafka up to 2.11 also compresses with lz4, gzip or snappy
// only if Produce v0 is announced, so Produce is announced from v0 as real
// brokers announce it; what a Produce below v3 carries (legacy message
// sets) is answered CORRUPT_MESSAGE. Without these, librdkafka silently
// sends uncompressed batches.
var advertised = []struct {
	api      *protocol.API
	min, max int16
	serve    bool
}{
	{api.Produce, api.Produce.MinVersion, api.Produce.MaxVersion, true},
	{api.Fetch, api.Fetch.MinVersion, api.Fetch.MaxVersion, false},
	{api.Metadata, api.Metadata.MinVersion, api.Metadata.MaxVersion, true},
	{api.FindCoordinator, api.FindCoordinator.MinVersion, api.FindCoordinator.MaxVersion, false},
	{api.ApiVersions, api.ApiVersions.MinVersion, api.ApiVersions.MaxVersion, true},
	{api.InitProducerId, api.InitProducerId.MinVersion, api.InitProducerId.MaxVersion, true},
	{api.CreateTopics, api.CreateTopics.MinVersion, api.CreateTopics.MaxVersion, true},
	// v0 answers with a list of offsets, which no client the sink serves
	// asks for.
	{api.ListOffsets, 1, api.ListOffsets.MaxVersion, true},
}

// Field handles, resolved once from the declarations.
var h = struct {
	avErr, avKeys, avKey, avMin, avMax protocol.Handle

	mdReqTopics, mdReqName, mdReqID                                 protocol.Handle
	mdBrokers, mdNode, mdHost, mdPort, mdCluster, mdController      protocol.Handle
	mdTopics, mdTErr, mdTName, mdTID, mdParts                       protocol.Handle
	mdPErr, mdPIndex, mdPLeader, mdPEpoch, mdPReplicas, mdPIsr      protocol.Handle
	ipErr, ipID, ipEpoch                                            protocol.Handle
	prResps, prName, prID, prParts, prIndex, prErr, prBase, prStart protocol.Handle

	ctReqTopics, ctReqName, ctReqParts, ctReqRF, ctValidate      protocol.Handle
	ctTopics, ctName, ctID, ctErr, ctMsg, ctParts, ctRF          protocol.Handle
	loReqTopics, loReqName, loReqParts, loReqIndex, loReqTS      protocol.Handle
	loTopics, loName, loParts, loIndex, loErr, loTS, loOff, loEp protocol.Handle
}{}

func init() {
	r := api.ApiVersions.Response
	h.avErr, h.avKeys = r.Handle("ErrorCode"), r.Handle("ApiKeys")
	k := r.Child(h.avKeys)
	h.avKey, h.avMin, h.avMax = k.Handle("ApiKey"), k.Handle("MinVersion"), k.Handle("MaxVersion")

	q := api.Metadata.Request
	h.mdReqTopics = q.Handle("Topics")
	qt := q.Child(h.mdReqTopics)
	h.mdReqName, h.mdReqID = qt.Handle("Name"), qt.Handle("TopicId")
	m := api.Metadata.Response
	h.mdBrokers, h.mdCluster, h.mdController, h.mdTopics = m.Handle("Brokers"), m.Handle("ClusterId"), m.Handle("ControllerId"), m.Handle("Topics")
	b := m.Child(h.mdBrokers)
	h.mdNode, h.mdHost, h.mdPort = b.Handle("NodeId"), b.Handle("Host"), b.Handle("Port")
	t := m.Child(h.mdTopics)
	h.mdTErr, h.mdTName, h.mdTID, h.mdParts = t.Handle("ErrorCode"), t.Handle("Name"), t.Handle("TopicId"), t.Handle("Partitions")
	p := t.Child(h.mdParts)
	h.mdPErr, h.mdPIndex, h.mdPLeader, h.mdPEpoch = p.Handle("ErrorCode"), p.Handle("PartitionIndex"), p.Handle("LeaderId"), p.Handle("LeaderEpoch")
	h.mdPReplicas, h.mdPIsr = p.Handle("ReplicaNodes"), p.Handle("IsrNodes")

	i := api.InitProducerId.Response
	h.ipErr, h.ipID, h.ipEpoch = i.Handle("ErrorCode"), i.Handle("ProducerId"), i.Handle("ProducerEpoch")

	pr := api.Produce.Response
	h.prResps = pr.Handle("Responses")
	prt := pr.Child(h.prResps)
	h.prName, h.prID, h.prParts = prt.Handle("Name"), prt.Handle("TopicId"), prt.Handle("PartitionResponses")
	prp := prt.Child(h.prParts)
	h.prIndex, h.prErr, h.prBase, h.prStart = prp.Handle("Index"), prp.Handle("ErrorCode"), prp.Handle("BaseOffset"), prp.Handle("LogStartOffset")

	cq := api.CreateTopics.Request
	h.ctReqTopics, h.ctValidate = cq.Handle("Topics"), cq.Handle("ValidateOnly")
	cqt := cq.Child(h.ctReqTopics)
	h.ctReqName, h.ctReqParts, h.ctReqRF = cqt.Handle("Name"), cqt.Handle("NumPartitions"), cqt.Handle("ReplicationFactor")
	cr := api.CreateTopics.Response
	h.ctTopics = cr.Handle("Topics")
	crt := cr.Child(h.ctTopics)
	h.ctName, h.ctID, h.ctErr, h.ctMsg = crt.Handle("Name"), crt.Handle("TopicId"), crt.Handle("ErrorCode"), crt.Handle("ErrorMessage")
	h.ctParts, h.ctRF = crt.Handle("NumPartitions"), crt.Handle("ReplicationFactor")

	lq := api.ListOffsets.Request
	h.loReqTopics = lq.Handle("Topics")
	lqt := lq.Child(h.loReqTopics)
	h.loReqName, h.loReqParts = lqt.Handle("Name"), lqt.Handle("Partitions")
	lqp := lqt.Child(h.loReqParts)
	h.loReqIndex, h.loReqTS = lqp.Handle("PartitionIndex"), lqp.Handle("Timestamp")
	lr := api.ListOffsets.Response
	h.loTopics = lr.Handle("Topics")
	lrt := lr.Child(h.loTopics)
	h.loName, h.loParts = lrt.Handle("Name"), lrt.Handle("Partitions")
	lrp := lrt.Child(h.loParts)
	h.loIndex, h.loErr, h.loTS, h.loOff, h.loEp = lrp.Handle("PartitionIndex"), lrp.Handle("ErrorCode"), lrp.Handle("Timestamp"), lrp.Handle("Offset"), lrp.Handle("LeaderEpoch")
}

// oneNode is the replica and ISR list of every partition. Read only.
var oneNode = []int32{nodeID}

// dispatch answers one request frame (without its size prefix), appending
// the response frame to dst. An error means the connection must be closed:
// a malformed frame or a request the sink does not serve.
func (s *sink) dispatch(c *conn, frame, dst []byte) ([]byte, error) {
	key, ver, err := protocol.PeekRequestKey(frame)
	if err != nil {
		return dst, err
	}
	a := api.ByKey(key)
	if key == api.ApiVersions.Key && ver > api.ApiVersions.MaxVersion {
		// A newer ApiVersions than ours: its header and body may have
		// fields we do not know, but the correlation id is always at
		// bytes 4-8. Answer at v0 with our ranges (KIP-511).
		if len(frame) < 8 {
			return dst, fmt.Errorf("ApiVersions v%d request of %d bytes has no correlation id", ver, len(frame))
		}
		s.requests.Add(1)
		return appendAPIVersions(dst, apiVersionsFallbackVer, int32(binary.BigEndian.Uint32(frame[4:])), errUnsupportedVersion)
	}
	if a == nil || !isServed(key, ver) {
		name := fmt.Sprintf("key %d", key)
		if a != nil {
			name = a.Name
		}
		return dst, fmt.Errorf("unsupported request %s v%d (the sink serves ApiVersions, Metadata, CreateTopics, ListOffsets v1+, InitProducerId and Produce)", name, ver)
	}
	hdr, body, err := protocol.ParseRequestHeader(frame, a.RequestHeaderVersion(ver))
	if err != nil {
		return dst, fmt.Errorf("%s v%d: %w", a.Name, ver, err)
	}
	if string(hdr.ClientID) != c.client {
		c.client = string(hdr.ClientID)
	}
	s.requests.Add(1)
	switch key {
	case api.Produce.Key:
		return s.produce(c, dst, ver, hdr.CorrelationID, body)
	case api.Metadata.Key:
		return s.metadata(c, dst, ver, hdr.CorrelationID, body)
	case api.ApiVersions.Key:
		// The request body (client software name and version) is not
		// needed; it is not even decoded.
		return appendAPIVersions(dst, ver, hdr.CorrelationID, 0)
	case api.InitProducerId.Key:
		return s.initProducerID(dst, ver, hdr.CorrelationID)
	case api.CreateTopics.Key:
		return s.createTopics(c, dst, ver, hdr.CorrelationID, body)
	case api.ListOffsets.Key:
		return s.listOffsets(c, dst, ver, hdr.CorrelationID, body)
	}
	return dst, fmt.Errorf("%s v%d: no handler", a.Name, ver) // unreachable: isServed
}

func isServed(key, ver int16) bool {
	for _, e := range advertised {
		if e.api.Key == key {
			return e.serve && ver >= e.min && ver <= e.max
		}
	}
	return false
}

func appendAPIVersions(dst []byte, ver int16, corr int32, code int16) ([]byte, error) {
	r := protocol.NewRecord(api.ApiVersions.Response)
	r.Set(h.avErr, code)
	for _, e := range advertised {
		k := r.Append(h.avKeys)
		k.Set(h.avKey, e.api.Key).Set(h.avMin, e.min).Set(h.avMax, e.max)
	}
	return appendResponse(dst, r, ver, corr)
}

func appendResponse(dst []byte, r *protocol.Record, ver int16, corr int32) ([]byte, error) {
	out, err := protocol.AppendResponse(dst, r, ver, corr)
	if err != nil {
		return dst, fmt.Errorf("encode %s v%d: %w", r.Schema().Name(), ver, err)
	}
	return out, nil
}

func (s *sink) initProducerID(dst []byte, ver int16, corr int32) ([]byte, error) {
	r := protocol.NewRecord(api.InitProducerId.Response)
	r.Set(h.ipErr, int16(0)).Set(h.ipID, s.producerIDs.Add(1)).Set(h.ipEpoch, int16(0))
	return appendResponse(dst, r, ver, corr)
}

// metadata answers with this broker as the only one and every requested
// topic (or every topic that exists, for an all-topics request) led by
// it, creating topics unless NoAutoCreate.
func (s *sink) metadata(c *conn, dst []byte, ver int16, corr int32, body []byte) ([]byte, error) {
	v, err := c.dec.Decode(api.Metadata.Request, ver, body)
	if err != nil {
		return dst, fmt.Errorf("Metadata v%d: %w", ver, err)
	}
	r := protocol.NewRecord(api.Metadata.Response)
	b := r.Append(h.mdBrokers)
	b.Set(h.mdNode, nodeID).Set(h.mdHost, c.localIP).Set(h.mdPort, c.port)
	r.Set(h.mdCluster, clusterID).Set(h.mdController, nodeID)

	topics := v.Array(h.mdReqTopics)
	// A null list (v1+), or an empty one at v0, asks for every topic.
	if topics.IsNull() || (ver == 0 && topics.Len() == 0) {
		for _, t := range s.topics.all() {
			s.appendTopic(r, t, 0)
		}
	} else {
		for i := 0; i < topics.Len(); i++ {
			e := topics.At(i)
			name := e.StringBytes(h.mdReqName)
			switch {
			case name != nil:
				t := s.topics.lookupName(name)
				if t == nil && !s.cfg.NoAutoCreate {
					t, _ = s.topics.create(string(name), s.cfg.Partitions)
				}
				if t == nil {
					tr := r.Append(h.mdTopics)
					tr.Set(h.mdTErr, errUnknownTopicOrPart).Set(h.mdTName, string(name))
					continue
				}
				s.appendTopic(r, t, 0)
			default: // asked by id (v10+)
				id := e.UUID(h.mdReqID)
				if t := s.topics.lookupID(id); t != nil {
					s.appendTopic(r, t, 0)
				} else {
					tr := r.Append(h.mdTopics)
					tr.Set(h.mdTErr, errUnknownTopicID).Set(h.mdTID, id)
					if ver >= 12 {
						tr.Set(h.mdTName, nil) // names are nullable from v12
					}
				}
			}
		}
	}
	c.dec.Reset()
	return appendResponse(dst, r, ver, corr)
}

func (s *sink) appendTopic(r *protocol.Record, t *topic, code int16) {
	tr := r.Append(h.mdTopics)
	tr.Set(h.mdTErr, code).Set(h.mdTName, t.name).Set(h.mdTID, t.id)
	for p := range t.next {
		pr := tr.Append(h.mdParts)
		pr.Set(h.mdPErr, int16(0)).Set(h.mdPIndex, int32(p)).Set(h.mdPLeader, nodeID).Set(h.mdPEpoch, int32(0))
		pr.Set(h.mdPReplicas, oneNode).Set(h.mdPIsr, oneNode)
	}
}

// produce counts the batches of every partition and acknowledges them.
func (s *sink) produce(c *conn, dst []byte, ver int16, corr int32, body []byte) ([]byte, error) {
	v, err := api.DecodeProduceRequest(&c.dec, ver, body)
	if err != nil {
		return dst, fmt.Errorf("Produce v%d: %w", ver, err)
	}
	acks := v.Acks()
	r := protocol.NewRecord(api.Produce.Response)
	for i := 0; i < v.NumTopics(); i++ {
		pt := v.Topic(i)
		tr := r.Append(h.prResps)
		var t *topic
		code := int16(0)
		if ver >= 13 {
			id := pt.TopicID()
			tr.Set(h.prID, id)
			if t = s.topics.lookupID(id); t == nil {
				code = errUnknownTopicID
			}
		} else {
			name := pt.Name()
			tr.Set(h.prName, string(name))
			if t = s.topics.lookupName(name); t == nil && !s.cfg.NoAutoCreate {
				t, _ = s.topics.create(string(name), s.cfg.Partitions)
			}
			if t == nil {
				code = errUnknownTopicOrPart
			}
		}
		for j := 0; j < pt.NumPartitions(); j++ {
			idx, recs := pt.Partition(j)
			pr := tr.Append(h.prParts)
			pr.Set(h.prIndex, idx)
			switch {
			case code != 0:
				pr.Set(h.prErr, code).Set(h.prBase, int64(-1))
			case idx < 0 || int(idx) >= len(t.next):
				pr.Set(h.prErr, errUnknownTopicOrPart).Set(h.prBase, int64(-1))
			default:
				ps := &t.parts[idx]
				ps.mu.Lock()
				n, perr := s.count(recs, ps)
				if perr != nil {
					ps.mu.Unlock()
					s.cfg.Log.Error("corrupt record set", "client", c.client, "topic", t.name, "partition", idx, "err", perr)
					pr.Set(h.prErr, errCorruptMessage).Set(h.prBase, int64(-1))
					continue
				}
				base := t.next[idx].Add(n) - n
				ps.mu.Unlock()
				pr.Set(h.prErr, int16(0)).Set(h.prBase, base).Set(h.prStart, int64(0))
			}
		}
	}
	c.dec.Reset()
	if acks == 0 {
		return dst, nil
	}
	return appendResponse(dst, r, ver, corr)
}

// count walks a partition's record set by batch headers and adds it to the
// totals. It returns the number of records, or an error for framing that
// cannot be walked (the record set is then not counted at all). With
// Verify, batches whose CRC or header is wrong are counted as corrupt but
// still accepted, and each batch is added to the partition's digest ps
// (held locked by the caller).
func (s *sink) count(recs []byte, ps *partState) (int64, error) {
	var n, batches, corrupt int64
	digest := ps.digest
	var codecs [len(s.codecs)]int64
	it := record.NewIter(recs)
	for it.Next() {
		b := it.Batch()
		if c := int(b.Codec()); c < len(codecs) {
			codecs[c]++
		}
		if s.cfg.Verify {
			if err := b.Validate(); err != nil {
				corrupt++
			}
			digest = DigestBatch(digest, b)
		}
		nr := b.NumRecords()
		if nr < 0 {
			s.corrupt.Add(corrupt + 1)
			return 0, fmt.Errorf("batch at byte %d: negative record count %d", it.Pos()-len(b), nr)
		}
		n += int64(nr)
		batches++
	}
	if err := it.Err(); err != nil {
		s.corrupt.Add(corrupt + 1)
		return 0, err
	}
	if it.Truncated() {
		s.corrupt.Add(corrupt + 1)
		return 0, fmt.Errorf("record set of %d bytes ends in a partial batch at byte %d", len(recs), it.Pos())
	}
	ps.batches += batches
	ps.digest = digest
	s.records.Add(n)
	s.batches.Add(batches)
	for c, k := range codecs {
		if k > 0 {
			s.codecs[c].Add(k)
		}
	}
	s.bytes.Add(int64(len(recs)))
	if corrupt > 0 {
		s.corrupt.Add(corrupt)
	}
	return n, nil
}

// createTopics creates each topic named with the partitions asked for;
// everything else about it is accepted and ignored.
func (s *sink) createTopics(c *conn, dst []byte, ver int16, corr int32, body []byte) ([]byte, error) {
	v, err := c.dec.Decode(api.CreateTopics.Request, ver, body)
	if err != nil {
		return dst, fmt.Errorf("CreateTopics v%d: %w", ver, err)
	}
	validateOnly := ver >= 1 && v.Bool(h.ctValidate)
	r := protocol.NewRecord(api.CreateTopics.Response)
	topics := v.Array(h.ctReqTopics)
	for i := 0; i < topics.Len(); i++ {
		e := topics.At(i)
		name := e.String(h.ctReqName)
		n, rf := int(e.Int32(h.ctReqParts)), e.Int16(h.ctReqRF)
		if n == -1 {
			n = s.cfg.Partitions
		}
		if rf == -1 {
			rf = 1
		}
		tr := r.Append(h.ctTopics)
		tr.Set(h.ctName, name)
		switch {
		case n < 1 || n > 1<<20:
			tr.Set(h.ctErr, errInvalidPartitions).Set(h.ctMsg, fmt.Sprintf("%d partitions: want 1 to %d", n, 1<<20))
			continue
		case validateOnly:
			if s.topics.lookupName([]byte(name)) != nil {
				tr.Set(h.ctErr, errTopicAlreadyExists)
				continue
			}
		default:
			t, created := s.topics.create(name, n)
			if !created {
				tr.Set(h.ctErr, errTopicAlreadyExists).Set(h.ctMsg, fmt.Sprintf("topic %s already exists", name))
				continue
			}
			tr.Set(h.ctID, t.id)
		}
		tr.Set(h.ctErr, int16(0)).Set(h.ctParts, int32(n)).Set(h.ctRF, rf)
	}
	c.dec.Reset()
	return appendResponse(dst, r, ver, corr)
}

// listOffsets answers a partition's earliest offset (0) and latest (the
// next offset it would give); no record is found by timestamp.
func (s *sink) listOffsets(c *conn, dst []byte, ver int16, corr int32, body []byte) ([]byte, error) {
	v, err := c.dec.Decode(api.ListOffsets.Request, ver, body)
	if err != nil {
		return dst, fmt.Errorf("ListOffsets v%d: %w", ver, err)
	}
	r := protocol.NewRecord(api.ListOffsets.Response)
	topics := v.Array(h.loReqTopics)
	for i := 0; i < topics.Len(); i++ {
		qt := topics.At(i)
		name := qt.StringBytes(h.loReqName)
		t := s.topics.lookupName(name)
		tr := r.Append(h.loTopics)
		tr.Set(h.loName, string(name))
		parts := qt.Array(h.loReqParts)
		for j := 0; j < parts.Len(); j++ {
			qp := parts.At(j)
			idx := qp.Int32(h.loReqIndex)
			pr := tr.Append(h.loParts)
			pr.Set(h.loIndex, idx)
			if t == nil || idx < 0 || int(idx) >= len(t.next) {
				pr.Set(h.loErr, errUnknownTopicOrPart)
				continue
			}
			off := int64(-1)
			switch qp.Int64(h.loReqTS) {
			case -2, -4: // earliest, earliest local (KIP-405)
				off = 0
			case -1: // latest
				off = t.next[idx].Load()
			}
			pr.Set(h.loErr, int16(0)).Set(h.loOff, off).Set(h.loTS, int64(-1)).Set(h.loEp, int32(0))
		}
	}
	c.dec.Reset()
	return appendResponse(dst, r, ver, corr)
}
