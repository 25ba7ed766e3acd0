package api

import (
	"bytes"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A framed request built by ktape is what kmsg's request formatter builds.
func TestAppendRequestMatchesKmsg(t *testing.T) {
	for _, v := range []int16{0, 3, 4} {
		r := protocol.NewRecord(ApiVersions.Request)
		if v >= 3 {
			r.SetName("ClientSoftwareName", "ktape").SetName("ClientSoftwareVersion", "0.1")
		}
		got, err := protocol.AppendRequest(nil, r, v, 9, []byte("client"))
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "ktape", "0.1"
		if v < 3 {
			req.ClientSoftwareName, req.ClientSoftwareVersion = "", ""
		}
		want := kmsg.NewRequestFormatter(kmsg.FormatterClientID("client")).AppendRequest(nil, req, 9)
		if !bytes.Equal(got, want) {
			t.Errorf("v%d:\n got %x\nwant %x", v, got, want)
		}
		key, ver, _ := protocol.PeekRequestKey(got[4:])
		h, body, err := protocol.ParseRequestHeader(got[4:], ApiVersions.RequestHeaderVersion(v))
		if err != nil || key != 18 || ver != v || h.CorrelationID != 9 || string(h.ClientID) != "client" {
			t.Fatalf("v%d: header %+v %v", v, h, err)
		}
		if _, err := protocol.Decode(ApiVersions.Request, v, body); err != nil {
			t.Fatalf("v%d: body: %v", v, err)
		}
	}
	if _, err := protocol.AppendRequest(nil, protocol.NewRecord(ApiVersions.Response), 3, 1, nil); err == nil {
		t.Fatal("AppendRequest accepted a response")
	}
}

// ApiVersions responses always use response header v0, even when flexible.
func TestApiVersionsResponseHeaderV0(t *testing.T) {
	if hv := ApiVersions.ResponseHeaderVersion(3); hv != 0 {
		t.Fatalf("ApiVersions v3 response header v%d", hv)
	}
	if hv := Metadata.ResponseHeaderVersion(9); hv != 1 {
		t.Fatalf("Metadata v9 response header v%d", hv)
	}
}

// A vectored request is the same bytes as a flat one, with large records
// fields referenced rather than copied.
func TestAppendRequestVectored(t *testing.T) {
	for _, v := range []int16{3, 9, 12, 13} {
		body := produceRequestBody(4, 3, v)
		r, err := protocol.Decode(Produce.Request, v, body)
		if err != nil {
			t.Fatal(err)
		}
		// Make the records large enough to be referenced.
		big := bytes.Repeat([]byte{0xAB}, protocol.VectoredMin+10)
		var bigs [][]byte
		for _, td := range r.Elems(Produce.Request.Handle("TopicData")) {
			for _, pd := range td.Elems(td.Schema().Handle("PartitionData")) {
				b := append([]byte{}, big...)
				bigs = append(bigs, b)
				pd.SetName("Records", b)
			}
		}
		flat, err := protocol.AppendRequest(nil, r, v, 7, []byte("id"))
		if err != nil {
			t.Fatal(err)
		}
		bufs, _, err := protocol.AppendRequestVectored(nil, make([]byte, 0, 16), r, v, 7, []byte("id"))
		if err != nil {
			t.Fatal(err)
		}
		if joined := bytes.Join(bufs, nil); !bytes.Equal(joined, flat) {
			t.Fatalf("v%d: vectored frame differs from the flat one (%d vs %d bytes)", v, len(joined), len(flat))
		}
		referenced := 0
		for _, seg := range bufs {
			for _, b := range bigs {
				if len(seg) == len(b) && &seg[0] == &b[0] {
					referenced++
				}
			}
		}
		if referenced != len(bigs) {
			t.Fatalf("v%d: %d of %d records fields referenced", v, referenced, len(bigs))
		}
	}
}
