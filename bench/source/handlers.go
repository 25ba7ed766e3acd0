package source

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// Kafka error codes the server answers with.
const (
	errOffsetOutOfRange     int16 = 1
	errUnknownTopicOrPart   int16 = 3
	errUnsupportedVersion   int16 = 35
	errFetchSessionNotFound int16 = 70
	errUnknownTopicID       int16 = 100
	nodeID                  int32 = 1
	clusterID                     = "ktape-bench-source"
	apiVersionsFallbackVer  int16 = 0
)

// advertised lists the APIs and versions ApiVersions announces. Fetch
// starts at v4 (record batches v2, Kafka 0.11) and ListOffsets at v1 (v0
// answers with a list of offsets, which no client this serves asks for).
// Produce is announced but not served: librdkafka enables record batches
// v2 (its MsgVer2 feature) only if the broker supports Produce v3 as well
// as Fetch v4, and otherwise fetches with Fetch v0.
var advertised = []struct {
	api      *protocol.API
	min, max int16
	serve    bool
}{
	{api.Produce, 3, api.Produce.MaxVersion, false},
	{api.Fetch, 4, api.Fetch.MaxVersion, true},
	{api.ListOffsets, 1, api.ListOffsets.MaxVersion, true},
	{api.Metadata, api.Metadata.MinVersion, api.Metadata.MaxVersion, true},
	{api.OffsetFetch, api.OffsetFetch.MinVersion, api.OffsetFetch.MaxVersion, true},
	{api.FindCoordinator, api.FindCoordinator.MinVersion, api.FindCoordinator.MaxVersion, true},
	{api.ListGroups, api.ListGroups.MinVersion, api.ListGroups.MaxVersion, true},
	{api.ApiVersions, api.ApiVersions.MinVersion, api.ApiVersions.MaxVersion, true},
	{api.DescribeConfigs, api.DescribeConfigs.MinVersion, api.DescribeConfigs.MaxVersion, true},
	{api.DescribeCluster, api.DescribeCluster.MinVersion, api.DescribeCluster.MaxVersion, true},
}

// groupAPIs are forwarded to ServerConfig.Groups when it is set, and
// announced at every version ktape declares (franz-go's kfake serves the
// same ranges).
var groupAPIs = []*protocol.API{api.JoinGroup, api.SyncGroup, api.Heartbeat, api.LeaveGroup}

// isGroupAPI reports whether key is one of groupAPIs.
func isGroupAPI(key int16) bool {
	for _, a := range groupAPIs {
		if a.Key == key {
			return true
		}
	}
	return false
}

func isServed(key, ver int16) bool {
	for _, e := range advertised {
		if e.api.Key == key {
			return e.serve && ver >= e.min && ver <= e.max
		}
	}
	return false
}

// oneNode is every partition's replica and ISR list. Read only.
var oneNode = []int32{nodeID}

// dispatch answers one request frame (without its size prefix), leaving
// the response's segments in c.bufs (none for no response). An error
// means the connection must be closed.
func (s *Server) dispatch(c *conn, frame []byte) error {
	key, ver, err := protocol.PeekRequestKey(frame)
	if err != nil {
		return err
	}
	if key == api.ApiVersions.Key && ver > api.ApiVersions.MaxVersion {
		// A newer ApiVersions than ktape knows: its header and body may
		// have fields we cannot read, but the correlation id is always at
		// bytes 4-8. Answer at v0 with our ranges (KIP-511).
		if len(frame) < 8 {
			return fmt.Errorf("ApiVersions v%d request of %d bytes has no correlation id", ver, len(frame))
		}
		s.requests.Add(1)
		return s.respond(c, s.apiVersions(errUnsupportedVersion), apiVersionsFallbackVer, int32(binary.BigEndian.Uint32(frame[4:])))
	}
	a := api.ByKey(key)
	if s.cfg.Groups != "" && a != nil && isGroupAPI(key) && ver >= a.MinVersion && ver <= a.MaxVersion {
		s.requests.Add(1)
		return s.forward(c, frame)
	}
	if a == nil || !isServed(key, ver) {
		name := fmt.Sprintf("api key %d", key)
		if a != nil {
			name = a.Name
		}
		return fmt.Errorf("unsupported request %s v%d (see the source package doc for what is served)", name, ver)
	}
	hdr, body, err := protocol.ParseRequestHeader(frame, a.RequestHeaderVersion(ver))
	if err != nil {
		return fmt.Errorf("%s v%d: %w", a.Name, ver, err)
	}
	if string(hdr.ClientID) != c.client {
		c.client = string(hdr.ClientID)
	}
	s.requests.Add(1)
	if key == api.Fetch.Key {
		return s.fetch(c, ver, hdr.CorrelationID, body)
	}
	if key == api.ApiVersions.Key {
		// The body (the client's software name and version) is not
		// needed, so it is not even decoded.
		return s.respond(c, s.apiVersions(0), ver, hdr.CorrelationID)
	}
	v, err := c.dec.Decode(a.Request, ver, body)
	if err != nil {
		return fmt.Errorf("%s v%d: %w", a.Name, ver, err)
	}
	defer c.dec.Reset()
	var r *protocol.Record
	switch key {
	case api.Metadata.Key:
		r = s.metadata(c, v, ver)
	case api.ListOffsets.Key:
		r = s.listOffsets(v)
	case api.DescribeConfigs.Key:
		r = s.describeConfigs(v)
	case api.DescribeCluster.Key:
		r = protocol.NewRecord(api.DescribeCluster.Response).SetName("ClusterId", clusterID).SetName("ControllerId", nodeID)
		b := r.Append(api.DescribeCluster.Response.Handle("Brokers"))
		b.SetName("BrokerId", nodeID).SetName("Host", c.localIP).SetName("Port", c.port)
	case api.ListGroups.Key:
		r = protocol.NewRecord(api.ListGroups.Response)
	case api.FindCoordinator.Key:
		r = s.findCoordinator(c, v, ver)
	case api.OffsetFetch.Key:
		r = s.offsetFetch(v, ver)
	default:
		return fmt.Errorf("%s v%d: no handler", a.Name, ver) // unreachable: isServed
	}
	return s.respond(c, r, ver, hdr.CorrelationID)
}

// respond encodes r as the response frame, to be written whole.
func (s *Server) respond(c *conn, r *protocol.Record, ver int16, corr int32) error {
	out, err := protocol.AppendResponse(c.out[:0], r, ver, corr)
	if err != nil {
		return fmt.Errorf("encode %s v%d: %w", r.Schema().Name(), ver, err)
	}
	c.out = out
	c.bufs = append(c.bufs, out)
	return nil
}

func (s *Server) apiVersions(code int16) *protocol.Record {
	resp := api.ApiVersions.Response
	keys := resp.Handle("ApiKeys")
	r := protocol.NewRecord(resp).SetName("ErrorCode", code)
	for _, e := range advertised {
		r.Append(keys).SetName("ApiKey", e.api.Key).SetName("MinVersion", e.min).SetName("MaxVersion", e.max)
	}
	if s.cfg.Groups != "" {
		for _, a := range groupAPIs {
			r.Append(keys).SetName("ApiKey", a.Key).SetName("MinVersion", a.MinVersion).SetName("MaxVersion", a.MaxVersion)
		}
	}
	return r
}

// forward sends a group request frame to ServerConfig.Groups and leaves
// its answer, size prefix and all, as the response. The request's
// correlation id stays the client's, so the answer needs no rewriting.
func (s *Server) forward(c *conn, frame []byte) error {
	if c.up == nil {
		up, err := net.DialTimeout("tcp", s.cfg.Groups, 10*time.Second)
		if err != nil {
			return fmt.Errorf("group coordinator %s: %w", s.cfg.Groups, err)
		}
		// Registered with the client's connection, so that Close ends a
		// request held by the coordinator.
		s.mu.Lock()
		closed := s.closed
		s.conns[up] = struct{}{}
		s.mu.Unlock()
		if closed {
			up.Close()
		}
		c.up, c.upR = up, bufio.NewReaderSize(up, 16<<10)
	}
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], uint32(len(frame)))
	req := net.Buffers{size[:], frame}
	if _, err := req.WriteTo(c.up); err != nil {
		return fmt.Errorf("forward to group coordinator %s: %w", s.cfg.Groups, err)
	}
	resp, err := protocol.ReadFrame(c.upR, c.upIn, s.cfg.MaxFrame)
	if cap(resp) > cap(c.upIn) {
		c.upIn = resp[:0]
	}
	if err != nil {
		return fmt.Errorf("answer of group coordinator %s: %w", s.cfg.Groups, err)
	}
	c.fwd = binary.BigEndian.AppendUint32(c.fwd[:0], uint32(len(resp)))
	c.fwd = append(c.fwd, resp...)
	c.bufs = append(c.bufs, c.fwd)
	return nil
}

// Metadata field handles, resolved once.
var md = func() (h struct {
	reqTopics, reqName, reqID                                   protocol.Handle
	brokers, node, host, port, cluster, controller, topics      protocol.Handle
	tErr, tName, tID, parts, pErr, pIndex, pLeader, pEpoch, pRe protocol.Handle
	pIsr                                                        protocol.Handle
}) {
	q := api.Metadata.Request
	h.reqTopics = q.Handle("Topics")
	qt := q.Child(h.reqTopics)
	h.reqName, h.reqID = qt.Handle("Name"), qt.Handle("TopicId")
	m := api.Metadata.Response
	h.brokers, h.cluster, h.controller, h.topics = m.Handle("Brokers"), m.Handle("ClusterId"), m.Handle("ControllerId"), m.Handle("Topics")
	b := m.Child(h.brokers)
	h.node, h.host, h.port = b.Handle("NodeId"), b.Handle("Host"), b.Handle("Port")
	t := m.Child(h.topics)
	h.tErr, h.tName, h.tID, h.parts = t.Handle("ErrorCode"), t.Handle("Name"), t.Handle("TopicId"), t.Handle("Partitions")
	p := t.Child(h.parts)
	h.pErr, h.pIndex, h.pLeader, h.pEpoch = p.Handle("ErrorCode"), p.Handle("PartitionIndex"), p.Handle("LeaderId"), p.Handle("LeaderEpoch")
	h.pRe, h.pIsr = p.Handle("ReplicaNodes"), p.Handle("IsrNodes")
	return h
}()

// metadata answers with this broker and the topic; other topics asked for
// do not exist.
func (s *Server) metadata(c *conn, v protocol.View, ver int16) *protocol.Record {
	r := protocol.NewRecord(api.Metadata.Response)
	r.Append(md.brokers).Set(md.node, nodeID).Set(md.host, c.localIP).Set(md.port, c.port)
	r.Set(md.cluster, clusterID).Set(md.controller, nodeID)
	topics := v.Array(md.reqTopics)
	// A null list (v1+), or an empty one at v0, asks for every topic.
	if topics.IsNull() || (ver == 0 && topics.Len() == 0) {
		s.appendTopicMetadata(r)
		return r
	}
	t := s.topic
	for i := 0; i < topics.Len(); i++ {
		e := topics.At(i)
		name := e.StringBytes(md.reqName)
		switch {
		case name != nil && string(name) == t.Name():
			s.appendTopicMetadata(r)
		case name != nil:
			r.Append(md.topics).Set(md.tErr, errUnknownTopicOrPart).Set(md.tName, string(name))
		case e.UUID(md.reqID) == t.ID(): // asked by id (v10+)
			s.appendTopicMetadata(r)
		default:
			tr := r.Append(md.topics).Set(md.tErr, errUnknownTopicID).Set(md.tID, e.UUID(md.reqID))
			if ver >= 12 {
				tr.Set(md.tName, nil) // names are nullable from v12
			}
		}
	}
	return r
}

func (s *Server) appendTopicMetadata(r *protocol.Record) {
	t := s.topic
	tr := r.Append(md.topics).Set(md.tErr, int16(0)).Set(md.tName, t.Name()).Set(md.tID, t.ID())
	for p := range t.NumPartitions() {
		tr.Append(md.parts).Set(md.pErr, int16(0)).Set(md.pIndex, int32(p)).Set(md.pLeader, nodeID).
			Set(md.pEpoch, int32(0)).Set(md.pRe, oneNode).Set(md.pIsr, oneNode)
	}
}

// listOffsets answers earliest, latest, max-timestamp and timestamp
// lookups for the topic's partitions.
func (s *Server) listOffsets(v protocol.View) *protocol.Record {
	q, resp := api.ListOffsets.Request, api.ListOffsets.Response
	qTopics := q.Handle("Topics")
	qParts := q.Child(qTopics).Handle("Partitions")
	qName := q.Child(qTopics).Handle("Name")
	qIndex, qTS := q.Child(qTopics).Child(qParts).Handle("PartitionIndex"), q.Child(qTopics).Child(qParts).Handle("Timestamp")
	rTopics := resp.Handle("Topics")
	rParts := resp.Child(rTopics).Handle("Partitions")

	r := protocol.NewRecord(resp)
	topics := v.Array(qTopics)
	for i := 0; i < topics.Len(); i++ {
		qt := topics.At(i)
		name := qt.String(qName)
		tr := r.Append(rTopics).SetName("Name", name)
		parts := qt.Array(qParts)
		for j := 0; j < parts.Len(); j++ {
			qp := parts.At(j)
			p := qp.Int32(qIndex)
			pr := tr.Append(rParts).SetName("PartitionIndex", p).SetName("LeaderEpoch", int32(0))
			if name != s.topic.Name() || p < 0 || int(p) >= s.topic.NumPartitions() {
				pr.SetName("ErrorCode", errUnknownTopicOrPart)
				continue
			}
			off, ts := s.topic.offsetFor(int(p), qp.Int64(qTS))
			pr.SetName("ErrorCode", int16(0)).SetName("Offset", off).SetName("Timestamp", ts)
		}
	}
	return r
}

// offsetFor answers a ListOffsets timestamp for partition p: the offset
// and the timestamp to return.
func (t *Topic) offsetFor(p int, ts int64) (int64, int64) {
	hwm := t.HighWatermark(p)
	switch ts {
	case -1: // latest
		return hwm, -1
	case -2, -4, -5: // earliest, earliest local (KIP-405), earliest tiered
		return 0, -1
	case -3: // the record with the largest timestamp (KIP-734)
		if hwm == 0 {
			return -1, -1
		}
		best, bestTS := int64(-1), int64(-1)
		for i := range t.NumBatches(p) {
			if mt := t.batchMaxTimestamp(p, i); mt > bestTS {
				best, bestTS = (int64(i)+1)*t.perB-1, mt
			}
		}
		return best, bestTS
	}
	if ts < 0 {
		return -1, -1
	}
	// The first record whose timestamp is at least ts: timestamps rise by
	// one millisecond per record within a batch.
	for i := range t.NumBatches(p) {
		if t.batchMaxTimestamp(p, i) >= ts {
			first := t.batchMaxTimestamp(p, i) - (t.perB - 1)
			k := max(0, ts-first)
			return int64(i)*t.perB + k, first + k
		}
	}
	return -1, -1
}

func (t *Topic) batchMaxTimestamp(p, i int) int64 {
	b := t.poolBatch(t.poolIndex(p, i))
	return int64(binary.BigEndian.Uint64(b[35:])) // MaxTimestamp, bytes 35-43 of a v2 batch
}

// describeConfigs answers every resource with no configs: the topic has
// only defaults. Topics other than the served one do not exist.
func (s *Server) describeConfigs(v protocol.View) *protocol.Record {
	q, resp := api.DescribeConfigs.Request, api.DescribeConfigs.Response
	qRes := q.Handle("Resources")
	qType, qName := q.Child(qRes).Handle("ResourceType"), q.Child(qRes).Handle("ResourceName")
	rRes := resp.Handle("Results")
	r := protocol.NewRecord(resp)
	res := v.Array(qRes)
	for i := 0; i < res.Len(); i++ {
		e := res.At(i)
		typ, name := e.Int8(qType), e.String(qName)
		code := int16(0)
		const topicResource = 2
		if typ == topicResource && name != s.topic.Name() {
			code = errUnknownTopicOrPart
		}
		r.Append(rRes).SetName("ErrorCode", code).SetName("ResourceType", typ).SetName("ResourceName", name)
	}
	return r
}

// findCoordinator names this broker as every group's coordinator.
func (s *Server) findCoordinator(c *conn, v protocol.View, ver int16) *protocol.Record {
	q, resp := api.FindCoordinator.Request, api.FindCoordinator.Response
	r := protocol.NewRecord(resp)
	if ver < 4 {
		return r.SetName("ErrorCode", int16(0)).SetName("NodeId", nodeID).SetName("Host", c.localIP).SetName("Port", c.port)
	}
	keys := v.Array(q.Handle("CoordinatorKeys"))
	rc := resp.Handle("Coordinators")
	for i := 0; i < keys.Len(); i++ {
		r.Append(rc).SetName("Key", string(keys.StringBytesAt(i))).SetName("NodeId", nodeID).
			SetName("Host", c.localIP).SetName("Port", c.port).SetName("ErrorCode", int16(0))
	}
	return r
}

// offsetFetch answers that no group has committed offsets.
func (s *Server) offsetFetch(v protocol.View, ver int16) *protocol.Record {
	q, resp := api.OffsetFetch.Request, api.OffsetFetch.Response
	r := protocol.NewRecord(resp)
	if ver < 8 {
		return r.SetName("ErrorCode", int16(0))
	}
	groups := v.Array(q.Handle("Groups"))
	gid := q.Child(q.Handle("Groups")).Handle("GroupId")
	rg := resp.Handle("Groups")
	for i := 0; i < groups.Len(); i++ {
		r.Append(rg).SetName("GroupId", groups.At(i).String(gid)).SetName("ErrorCode", int16(0))
	}
	return r
}
