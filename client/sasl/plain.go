package sasl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Plain is the PLAIN mechanism (RFC 4616): one client message,
// authzid NUL user NUL pass, and an empty reply from the server. It sends
// the password in the clear, so use it only over TLS.
//
// Zid (the authorization identity) is usually empty; Kafka refuses one that
// differs from User. A Plain value is safe for concurrent use.
//
// String and GoString redact Pass, but fmt prints a Plain that sits in an
// unexported struct field by reflection, without calling them; keep a
// *Plain there instead (fmt shows only the address of a nested pointer).
type Plain struct {
	Zid, User, Pass string
}

// Name is "PLAIN".
func (Plain) Name() string { return "PLAIN" }

// Start checks the credentials and returns the single client message.
// User must be non-empty, and no field may contain a NUL byte (the message
// separator).
func (p Plain) Start(context.Context) (Session, []byte, error) {
	switch {
	case p.User == "":
		return nil, nil, errors.New("sasl: PLAIN needs a user name")
	case strings.IndexByte(p.Zid, 0) >= 0:
		return nil, nil, errors.New("sasl: PLAIN authorization id contains a NUL byte")
	case strings.IndexByte(p.User, 0) >= 0:
		return nil, nil, errors.New("sasl: PLAIN user name contains a NUL byte")
	case strings.IndexByte(p.Pass, 0) >= 0:
		return nil, nil, errors.New("sasl: PLAIN password contains a NUL byte")
	}
	msg := make([]byte, 0, len(p.Zid)+len(p.User)+len(p.Pass)+2)
	msg = append(msg, p.Zid...)
	msg = append(msg, 0)
	msg = append(msg, p.User...)
	msg = append(msg, 0)
	msg = append(msg, p.Pass...)
	return new(plainSession), msg, nil
}

// String names the mechanism and user, never the password.
func (p Plain) String() string { return fmt.Sprintf("PLAIN(user=%q)", p.User) }

// GoString is like String, in Go syntax, with the password redacted.
func (p Plain) GoString() string {
	return fmt.Sprintf("sasl.Plain{Zid:%q, User:%q, Pass:%s}", p.Zid, p.User, redacted(p.Pass))
}

type plainSession struct{ done bool }

// Challenge accepts the server's reply to the client message, which must
// be empty: PLAIN has no server data.
func (s *plainSession) Challenge(server []byte) (bool, []byte, error) {
	if s.done {
		return true, nil, errors.New("sasl: PLAIN exchange already complete")
	}
	s.done = true
	if len(server) != 0 {
		return true, nil, fmt.Errorf("sasl: PLAIN server sent %d unexpected bytes", len(server))
	}
	return true, nil, nil
}

// redacted stands in for a secret in String and GoString output: it says
// whether the secret is set, never what it is.
func redacted(secret string) string {
	if secret == "" {
		return `""`
	}
	return "<redacted>"
}
