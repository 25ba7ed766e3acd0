package protocol

import (
	"errors"
	"fmt"
	"io"
)

// Every Kafka message travels in a frame: a big-endian int32 size, then a
// header, then the body. Request header v0 has key, version and correlation
// id; v1 adds a nullable client id; v2 (flexible requests) adds a tag
// section, while the client id stays a classic int16-length string so that
// a broker can read it before knowing whether the request is flexible.
// Response header v0 is the correlation id; v1 adds a tag section.

// RequestHeader is the header of a request.
type RequestHeader struct {
	APIKey        int16
	APIVersion    int16
	CorrelationID int32
	// ClientID is nil for a null client id. When parsed it borrows the
	// frame.
	ClientID []byte
}

// AppendTo appends the header at header version hv (0, 1 or 2). Tagged
// header fields are never written: none are defined for requests.
func (h *RequestHeader) AppendTo(dst []byte, hv int16) []byte {
	dst = appendInt16(dst, h.APIKey)
	dst = appendInt16(dst, h.APIVersion)
	dst = appendInt32(dst, h.CorrelationID)
	if hv >= 1 {
		if h.ClientID == nil {
			dst = appendInt16(dst, -1)
		} else {
			dst = appendInt16(dst, int16(len(h.ClientID)))
			dst = append(dst, h.ClientID...)
		}
	}
	if hv >= 2 {
		dst = append(dst, 0) // empty tag section
	}
	return dst
}

// PeekRequestKey returns the API key and version at the start of a request
// (after the size prefix), which decide the header version.
func PeekRequestKey(b []byte) (key, version int16, err error) {
	if len(b) < 4 {
		return 0, 0, &HeaderError{Offset: 0, Reason: fmt.Sprintf("request of %d bytes has no api key and version", len(b))}
	}
	return int16(be16(b)), int16(be16(b[2:])), nil
}

// ParseRequestHeader parses a request header of version hv from the start
// of b and returns it and the body that follows. The client id borrows b.
func ParseRequestHeader(b []byte, hv int16) (h RequestHeader, body []byte, err error) {
	if len(b) < 8 {
		return h, nil, &HeaderError{Offset: 0, Reason: fmt.Sprintf("request header needs 8 bytes, have %d", len(b))}
	}
	h.APIKey, h.APIVersion, h.CorrelationID = int16(be16(b)), int16(be16(b[2:])), int32(be32(b[4:]))
	pos := 8
	if hv >= 1 {
		if len(b) < pos+2 {
			return h, nil, &HeaderError{Offset: pos, Reason: "truncated client id length"}
		}
		n := int(int16(be16(b[pos:])))
		pos += 2
		switch {
		case n == -1:
		case n < -1:
			return h, nil, &HeaderError{Offset: pos - 2, Reason: fmt.Sprintf("negative client id length %d", n)}
		case n > len(b)-pos:
			return h, nil, &HeaderError{Offset: pos, Reason: fmt.Sprintf("client id of %d bytes, %d left", n, len(b)-pos)}
		default:
			h.ClientID = b[pos : pos+n : pos+n]
			pos += n
		}
	}
	if hv >= 2 {
		var err error
		if pos, err = skipTagSection(b, pos); err != nil {
			return h, nil, err
		}
	}
	return h, b[pos:], nil
}

// AppendResponseHeader appends a response header of version hv (0 or 1).
func AppendResponseHeader(dst []byte, hv int16, correlationID int32) []byte {
	dst = appendInt32(dst, correlationID)
	if hv >= 1 {
		dst = append(dst, 0)
	}
	return dst
}

// ParseResponseHeader parses a response header of version hv from the
// start of b and returns the correlation id and the body.
func ParseResponseHeader(b []byte, hv int16) (correlationID int32, body []byte, err error) {
	if len(b) < 4 {
		return 0, nil, &HeaderError{Offset: 0, Reason: fmt.Sprintf("response header needs 4 bytes, have %d", len(b))}
	}
	correlationID = int32(be32(b))
	pos := 4
	if hv >= 1 {
		if pos, err = skipTagSection(b, pos); err != nil {
			return correlationID, nil, err
		}
	}
	return correlationID, b[pos:], nil
}

func skipTagSection(b []byte, pos int) (int, error) {
	n, k := uvarint32(b[pos:])
	if k <= 0 {
		return pos, &HeaderError{Offset: pos, Reason: "bad tag count"}
	}
	pos += k
	for ; n > 0; n-- {
		_, k := uvarint32(b[pos:])
		if k <= 0 {
			return pos, &HeaderError{Offset: pos, Reason: "bad tag"}
		}
		pos += k
		size, k := uvarint32(b[pos:])
		if k <= 0 || int(size) > len(b)-pos-k {
			return pos, &HeaderError{Offset: pos, Reason: "bad tagged field size"}
		}
		pos += k + int(size)
	}
	return pos, nil
}

// HeaderError reports a malformed request or response header.
type HeaderError struct {
	Offset int
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("protocol: header at byte %d: %s", e.Offset, e.Reason)
}

// AppendRequest appends a complete request frame: size, header and r
// encoded at version v. r must be a request Record.
func AppendRequest(dst []byte, r *Record, v int16, correlationID int32, clientID []byte) ([]byte, error) {
	a := r.schema.api
	if !r.schema.isReq || r.schema != a.Request {
		return dst, fmt.Errorf("protocol: AppendRequest given a %s, not a request", r.schema.name)
	}
	start := len(dst)
	out := append(dst, 0, 0, 0, 0)
	h := RequestHeader{APIKey: a.Key, APIVersion: v, CorrelationID: correlationID, ClientID: clientID}
	out = h.AppendTo(out, a.RequestHeaderVersion(v))
	out, err := r.AppendTo(out, v)
	if err != nil {
		return dst, err
	}
	putBE32(out[start:], uint32(len(out)-start-4))
	return out, nil
}

// AppendResponse appends a complete response frame for r at version v.
func AppendResponse(dst []byte, r *Record, v int16, correlationID int32) ([]byte, error) {
	a := r.schema.api
	if r.schema != a.Response {
		return dst, fmt.Errorf("protocol: AppendResponse given a %s, not a response", r.schema.name)
	}
	start := len(dst)
	out := append(dst, 0, 0, 0, 0)
	out = AppendResponseHeader(out, a.ResponseHeaderVersion(v), correlationID)
	out, err := r.AppendTo(out, v)
	if err != nil {
		return dst, err
	}
	putBE32(out[start:], uint32(len(out)-start-4))
	return out, nil
}

// ErrFrameTooLarge is returned by ReadFrame for a frame over the limit.
var ErrFrameTooLarge = errors.New("protocol: frame too large")

// ReadFrame reads one size-prefixed frame from r into buf, reusing buf's
// capacity, and returns the frame without its size prefix. A frame larger
// than max bytes is refused before anything is allocated for it: the size
// prefix comes from the peer. At a clean end of stream it returns io.EOF;
// in the middle of a frame, io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return buf[:0], err
	}
	n := int(int32(be32(size[:])))
	if n < 0 || n > max {
		return buf[:0], fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf[:0], err
	}
	return buf, nil
}
