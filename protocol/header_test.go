package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRequestHeaderRoundTrip(t *testing.T) {
	for hv := int16(0); hv <= 2; hv++ {
		for _, id := range [][]byte{nil, {}, []byte("ktape")} {
			h := RequestHeader{APIKey: 1, APIVersion: 16, CorrelationID: 7, ClientID: id}
			b := h.AppendTo(nil, hv)
			b = append(b, 0xAA) // body
			got, body, err := ParseRequestHeader(b, hv)
			if err != nil {
				t.Fatalf("v%d: %v", hv, err)
			}
			if hv == 0 {
				h.ClientID = nil
			}
			if got.APIKey != 1 || got.APIVersion != 16 || got.CorrelationID != 7 || !bytes.Equal(got.ClientID, h.ClientID) || (got.ClientID == nil) != (h.ClientID == nil) {
				t.Fatalf("v%d: got %+v, want %+v", hv, got, h)
			}
			if !bytes.Equal(body, []byte{0xAA}) {
				t.Fatalf("v%d: body %x", hv, body)
			}
		}
	}
}

// Golden bytes: request header v2 keeps a classic (int16) client id and
// adds an empty tag section.
func TestRequestHeaderV2Golden(t *testing.T) {
	h := RequestHeader{APIKey: 18, APIVersion: 3, CorrelationID: 1, ClientID: []byte("kt")}
	want := []byte{0, 18, 0, 3, 0, 0, 0, 1, 0, 2, 'k', 't', 0}
	if got := h.AppendTo(nil, 2); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		hv   int16
	}{
		{"short", []byte{0, 1, 0}, 1},
		{"client id past end", []byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 9, 'a'}, 1},
		{"negative client id", []byte{0, 1, 0, 1, 0, 0, 0, 1, 0xff, 0xfe}, 1},
		{"tag past end", []byte{0, 1, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 1, 0, 5, 0}, 2},
	}
	for _, c := range cases {
		var he *HeaderError
		if _, _, err := ParseRequestHeader(c.b, c.hv); !errors.As(err, &he) {
			t.Errorf("%s: got %v, want a *HeaderError", c.name, err)
		}
	}
	if _, _, err := ParseResponseHeader([]byte{0, 0, 0, 1, 2}, 1); err == nil {
		t.Error("response header with a bad tag section accepted")
	}
}

func TestResponseHeader(t *testing.T) {
	for hv := int16(0); hv <= 1; hv++ {
		b := append(AppendResponseHeader(nil, hv, 42), 0xBB)
		corr, body, err := ParseResponseHeader(b, hv)
		if err != nil || corr != 42 || !bytes.Equal(body, []byte{0xBB}) {
			t.Fatalf("v%d: %d %x %v", hv, corr, body, err)
		}
	}
}

func TestReadFrame(t *testing.T) {
	var stream []byte
	stream = append(stream, 0, 0, 0, 3, 'a', 'b', 'c')
	stream = append(stream, 0, 0, 0, 1, 'd')
	r := bytes.NewReader(stream)
	buf := make([]byte, 0, 2)
	f, err := ReadFrame(r, buf, 16)
	if err != nil || string(f) != "abc" {
		t.Fatalf("%q %v", f, err)
	}
	if f, err = ReadFrame(r, f, 16); err != nil || string(f) != "d" {
		t.Fatalf("%q %v", f, err)
	}
	if _, err = ReadFrame(r, f, 16); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff}), nil, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 5, 'x'}), nil, 16); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated frame: %v", err)
	}
}
