// Package sasl defines SASL mechanisms for authenticating Kafka
// connections: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER. It knows
// nothing of Kafka's wire protocol; package client carries the messages in
// SaslAuthenticate requests after a SaslHandshake.
//
// Secrets never appear in errors or in String output.
package sasl

import "context"

// Mechanism is a SASL mechanism with its credentials. Implementations are
// safe for concurrent use: each authentication gets its own Session.
type Mechanism interface {
	// Name is the mechanism's IANA name, sent in SaslHandshake.
	Name() string
	// Start begins an authentication and returns its session and the
	// client's first message.
	Start(ctx context.Context) (Session, []byte, error)
}

// Session is one authentication exchange.
type Session interface {
	// Challenge takes the server's message and returns the client's next
	// message, and done once the exchange is complete from the client's
	// side (after done, the server's last message, if any, has been
	// verified). A server message that fails verification is an error.
	Challenge(server []byte) (done bool, response []byte, err error)
}
