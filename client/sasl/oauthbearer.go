package sasl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// OAuthBearer is the OAUTHBEARER mechanism (RFC 7628) as Kafka uses it
// (KIP-255, KIP-342): the client sends a bearer token and optional
// extensions in one message; the server replies with nothing on success, or
// with an error document (JSON) on failure.
//
// On an error document the session answers with the single byte 0x01, as
// RFC 7628 §3.2.3 requires, and fails: Challenge returns done, that
// response and a *ServerError holding the document. This is the one case
// in this package where Challenge returns a response together with an
// error; a caller should send the response (so the broker can finish the
// exchange with its own error) and then fail with the returned error.
//
// Token is called once per authentication, so it can refresh a token that
// expires. An OAuthBearer value is safe for concurrent use if Token is.
type OAuthBearer struct {
	Token func(ctx context.Context) (Token, error)
}

// Token is an OAuth 2 bearer token and the SASL extensions to send with it.
type Token struct {
	// Value is the token, as sent in "auth=Bearer <Value>".
	Value string
	// Extensions are key=value pairs sent after the token, in key order.
	// Keys are letters only and "auth" is reserved; values are printable
	// ASCII, space, tab, CR or LF (RFC 7628 §3.1).
	Extensions map[string]string
}

// String never shows the token.
func (t Token) String() string {
	return fmt.Sprintf("sasl.Token{Value:%s, Extensions:%d}", redacted(t.Value), len(t.Extensions))
}

// GoString never shows the token.
func (t Token) GoString() string { return t.String() }

// Name is "OAUTHBEARER".
func (OAuthBearer) Name() string { return "OAUTHBEARER" }

// Start gets a token and returns the client's only message,
// "n,,\x01auth=Bearer <token>\x01[key=value\x01...]\x01".
func (o OAuthBearer) Start(ctx context.Context) (Session, []byte, error) {
	if o.Token == nil {
		return nil, nil, errors.New("sasl: OAUTHBEARER has no Token function")
	}
	tok, err := o.Token(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("sasl: OAUTHBEARER token: %w", err)
	}
	msg, err := tok.appendInitial(nil)
	if err != nil {
		return nil, nil, err
	}
	return new(oauthSession), msg, nil
}

// appendInitial appends the client's initial response (RFC 7628 §3.1).
// Errors name the problem, never the token or an extension's value.
func (t Token) appendInitial(dst []byte) ([]byte, error) {
	if t.Value == "" {
		return dst, errors.New("sasl: OAUTHBEARER token is empty")
	}
	if !isBearerToken(t.Value) {
		return dst, errors.New("sasl: OAUTHBEARER token has characters a bearer token cannot have (RFC 6750 b64token)")
	}
	keys := make([]string, 0, len(t.Extensions))
	for k, v := range t.Extensions {
		if k == "auth" {
			return dst, errors.New(`sasl: OAUTHBEARER extension "auth" is reserved`)
		}
		if !isExtensionKey(k) {
			return dst, fmt.Errorf("sasl: OAUTHBEARER extension key %q is not letters only", k)
		}
		if !isExtensionValue(v) {
			return dst, fmt.Errorf("sasl: OAUTHBEARER extension %q has a value with characters outside RFC 7628's", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, "n,,\x01auth=Bearer "...)
	dst = append(dst, t.Value...)
	dst = append(dst, 0x01)
	for _, k := range keys {
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = append(dst, t.Extensions[k]...)
		dst = append(dst, 0x01)
	}
	return append(dst, 0x01), nil
}

// isBearerToken reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// isExtensionKey: key = 1*(ALPHA).
func isExtensionKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isExtensionValue: value = *(VCHAR / SP / HTAB / CR / LF).
func isExtensionValue(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 0x21 <= c && c <= 0x7e, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return false
		}
	}
	return true
}

// String never shows a token (it has none until Start).
func (o OAuthBearer) String() string { return "OAUTHBEARER" }

// GoString never shows a token.
func (o OAuthBearer) GoString() string {
	if o.Token == nil {
		return "sasl.OAuthBearer{Token:nil}"
	}
	return "sasl.OAuthBearer{Token:func}"
}

// ServerError is a server's refusal during a SASL exchange: for
// OAUTHBEARER, the error document the server sent (RFC 7628 §3.2.2), e.g.
// {"status":"invalid_token"}.
type ServerError struct {
	Mechanism string
	Message   string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("sasl: %s refused by server: %s", e.Mechanism, e.Message)
}

type oauthSession struct{ done bool }

// Challenge takes the server's reply: empty means success; anything else
// is an error document, answered with 0x01 and returned as a *ServerError.
func (s *oauthSession) Challenge(server []byte) (bool, []byte, error) {
	if s.done {
		return true, nil, errors.New("sasl: OAUTHBEARER exchange already complete")
	}
	s.done = true
	if len(server) == 0 {
		return true, nil, nil
	}
	return true, []byte{0x01}, &ServerError{Mechanism: "OAUTHBEARER", Message: string(server)}
}

// TokenFromFile returns a Token function that reads the token from path
// each time it is called, so a file rewritten by a sidecar is picked up on
// the next connection. Surrounding white space is trimmed; an empty file
// is an error. The token has no extensions.
func TokenFromFile(path string) func(context.Context) (Token, error) {
	return func(context.Context) (Token, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return Token{}, err // *fs.PathError: names the file, not its contents
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return Token{}, fmt.Errorf("token file %s is empty", path)
		}
		return Token{Value: v}, nil
	}
}
