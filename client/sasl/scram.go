package sasl

import (
	"context"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
)

// ScramHash selects the hash of a SCRAM mechanism.
type ScramHash uint8

// The SCRAM hashes Kafka supports.
const (
	SHA256 ScramHash = iota + 1 // SCRAM-SHA-256 (RFC 7677)
	SHA512                      // SCRAM-SHA-512
)

// String is the mechanism name, "SCRAM-SHA-256" or "SCRAM-SHA-512".
func (h ScramHash) String() string {
	switch h {
	case SHA256:
		return "SCRAM-SHA-256"
	case SHA512:
		return "SCRAM-SHA-512"
	}
	return fmt.Sprintf("SCRAM-unknown(%d)", uint8(h))
}

func (h ScramHash) gen() scram.HashGeneratorFcn {
	switch h {
	case SHA256:
		return scram.SHA256
	case SHA512:
		return scram.SHA512
	}
	return nil
}

// Scram is a SCRAM mechanism (RFC 5802) as Kafka uses it: no channel
// binding, no authorization id, no extensions. The exchange is
// client-first, server-first, client-final, server-final; the server-final
// message carries the server's signature, which is verified, so a server
// that does not know the password cannot pass.
//
// The protocol work is github.com/xdg-go/scram's. As in Kafka's own
// client, the user name and password are used as given, without SASLprep.
// Salted keys are cached per (salt, iterations), so later connections skip
// the PBKDF2 work. A *Scram is safe for concurrent use.
//
// Kafka's "tokenauth=true" extension (authenticating with a delegation
// token) is not offered: the extension is part of the signed
// client-first message, and xdg-go/scram cannot add one.
type Scram struct {
	hash   ScramHash
	user   string
	client *scram.Client // holds the password; behind a pointer, so fmt never shows it
}

// NewScram returns a SCRAM mechanism with hash h for user and pass. An
// unknown hash or an empty user is reported by Start.
func NewScram(h ScramHash, user, pass string) *Scram {
	s := &Scram{hash: h, user: user}
	if gen := h.gen(); gen != nil {
		// NewClientUnprepped cannot fail.
		s.client, _ = gen.NewClientUnprepped(user, pass, "")
	}
	return s
}

// ScramSHA256 returns the SCRAM-SHA-256 mechanism for user and pass.
func ScramSHA256(user, pass string) *Scram { return NewScram(SHA256, user, pass) }

// ScramSHA512 returns the SCRAM-SHA-512 mechanism for user and pass.
func ScramSHA512(user, pass string) *Scram { return NewScram(SHA512, user, pass) }

// Name is "SCRAM-SHA-256" or "SCRAM-SHA-512".
func (s *Scram) Name() string { return s.hash.String() }

// Start returns a session and the client-first message.
func (s *Scram) Start(context.Context) (Session, []byte, error) {
	if s.client == nil {
		return nil, nil, fmt.Errorf("sasl: %s is not a supported SCRAM mechanism", s.hash)
	}
	if s.user == "" {
		return nil, nil, fmt.Errorf("sasl: %s needs a user name", s.hash)
	}
	conv := s.client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return nil, nil, fmt.Errorf("sasl: %s client-first message: %w", s.hash, err)
	}
	return &scramSession{name: s.hash.String(), conv: conv}, []byte(first), nil
}

// String names the mechanism and user, never the password.
func (s *Scram) String() string { return fmt.Sprintf("%s(user=%q)", s.hash, s.user) }

// GoString is like String; the password is never shown.
func (s *Scram) GoString() string {
	return fmt.Sprintf("sasl.NewScram(%s, %q, <redacted>)", s.hash, s.user)
}

type scramSession struct {
	name  string
	conv  *scram.ClientConversation
	step  int // server messages seen
	fails bool
}

// Challenge takes the server-first message and returns the client-final
// one, then takes the server-final message, verifies the server's
// signature and reports done.
func (s *scramSession) Challenge(server []byte) (bool, []byte, error) {
	if s.fails {
		return true, nil, fmt.Errorf("sasl: %s exchange already failed", s.name)
	}
	if s.step >= 2 {
		return true, nil, fmt.Errorf("sasl: %s exchange already complete", s.name)
	}
	s.step++
	what := "server-first"
	if s.step == 2 {
		what = "server-final"
	}
	resp, err := s.conv.Step(string(server))
	if err != nil {
		s.fails = true
		return true, nil, fmt.Errorf("sasl: %s %s message: %w", s.name, what, err)
	}
	if s.step == 1 {
		return false, []byte(resp), nil
	}
	if !s.conv.Valid() {
		s.fails = true
		return true, nil, fmt.Errorf("sasl: %s server-final message: %w", s.name, errors.New("server signature not verified"))
	}
	return true, nil, nil
}

// Hash is the mechanism's hash.
func (s *Scram) Hash() ScramHash { return s.hash }
