package sasl_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/ktape/ktape/client/sasl"
)

// The mechanisms satisfy the interface as values or pointers, as documented.
var (
	_ sasl.Mechanism = sasl.Plain{}
	_ sasl.Mechanism = (*sasl.Scram)(nil)
	_ sasl.Mechanism = sasl.OAuthBearer{}
)

const secret = "pa55-w0rd-SECRET"

func TestPlainMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    sasl.Plain
		want string
	}{
		{"no authzid", sasl.Plain{User: "alice", Pass: "s3cret"}, "\x00alice\x00s3cret"},
		{"authzid", sasl.Plain{Zid: "alice", User: "alice", Pass: "s3cret"}, "alice\x00alice\x00s3cret"},
		{"empty password", sasl.Plain{User: "bob"}, "\x00bob\x00"},
		{"utf-8", sasl.Plain{User: "zoë", Pass: "пароль"}, "\x00zoë\x00пароль"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Name(); got != "PLAIN" {
				t.Fatalf("Name = %q", got)
			}
			s, first, err := tc.m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if string(first) != tc.want {
				t.Fatalf("first message %q, want %q", first, tc.want)
			}
			done, resp, err := s.Challenge(nil)
			if !done || resp != nil || err != nil {
				t.Fatalf("Challenge(empty) = %v, %q, %v; want done", done, resp, err)
			}
			if _, _, err := s.Challenge(nil); err == nil {
				t.Fatal("Challenge after done: no error")
			}
		})
	}
}

func TestPlainRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    sasl.Plain
	}{
		{"no user", sasl.Plain{Pass: secret}},
		{"NUL in user", sasl.Plain{User: "a\x00b", Pass: secret}},
		{"NUL in zid", sasl.Plain{Zid: "a\x00", User: "a", Pass: secret}},
		{"NUL in password", sasl.Plain{User: "a", Pass: secret + "\x00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.m.Start(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			noSecret(t, err.Error())
		})
	}
	s, _, err := sasl.Plain{User: "a", Pass: secret}.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if done, _, err := s.Challenge([]byte("surprise")); !done || err == nil {
		t.Fatalf("non-empty server reply: done %v, err %v; want done with an error", done, err)
	}
}

func TestOAuthBearerMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  sasl.Token
		want string
	}{
		{"token only", sasl.Token{Value: "eyJhbGciOi.eyJzdWIi.c2ln"},
			"n,,\x01auth=Bearer eyJhbGciOi.eyJzdWIi.c2ln\x01\x01"},
		{"extensions in key order", sasl.Token{Value: "tok-_~+/en==", Extensions: map[string]string{
			"traceId": "abc 123", "logicalCluster": "lkc-1", "empty": ""}},
			"n,,\x01auth=Bearer tok-_~+/en==\x01empty=\x01logicalCluster=lkc-1\x01traceId=abc 123\x01\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) { return tc.tok, nil }}
			if got := m.Name(); got != "OAUTHBEARER" {
				t.Fatalf("Name = %q", got)
			}
			s, first, err := m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if string(first) != tc.want {
				t.Fatalf("first message %q, want %q", first, tc.want)
			}
			done, resp, err := s.Challenge(nil)
			if !done || resp != nil || err != nil {
				t.Fatalf("Challenge(empty) = %v, %q, %v; want done", done, resp, err)
			}
		})
	}
}

func TestOAuthBearerServerError(t *testing.T) {
	m := sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) { return sasl.Token{Value: secret}, nil }}
	s, _, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"status":"invalid_token","scope":"kafka"}`
	done, resp, err := s.Challenge([]byte(doc))
	if !done || !bytes.Equal(resp, []byte{0x01}) {
		t.Fatalf("Challenge(error document) = %v, %q; want done and the 0x01 response", done, resp)
	}
	var se *sasl.ServerError
	if !errors.As(err, &se) || se.Message != doc || se.Mechanism != "OAUTHBEARER" {
		t.Fatalf("err = %v (%T); want a *ServerError holding the document", err, err)
	}
	if !strings.Contains(err.Error(), doc) {
		t.Fatalf("error %q does not include the server's document", err)
	}
	noSecret(t, err.Error())
}

func TestOAuthBearerRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  sasl.Token
		err  error
	}{
		{"token error", sasl.Token{}, errors.New("idp unreachable")},
		{"empty token", sasl.Token{}, nil},
		{"SOH in token", sasl.Token{Value: secret + "\x01x"}, nil},
		{"space in token", sasl.Token{Value: secret + " x"}, nil},
		{"reserved key", sasl.Token{Value: secret, Extensions: map[string]string{"auth": "x"}}, nil},
		{"bad key", sasl.Token{Value: secret, Extensions: map[string]string{"trace_id": "x"}}, nil},
		{"bad value", sasl.Token{Value: secret, Extensions: map[string]string{"k": secret + "\x01"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) { return tc.tok, tc.err }}
			_, _, err := m.Start(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err = %v; does not wrap the Token function's error", err)
			}
			noSecret(t, err.Error())
		})
	}
	if _, _, err := (sasl.OAuthBearer{}).Start(context.Background()); err == nil {
		t.Fatal("nil Token function: no error")
	}
}

func TestTokenFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	get := sasl.TokenFromFile(path)
	ctx := context.Background()
	if _, err := get(ctx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
	for _, content := range []string{"first.token\n", "  second.token\r\n\t"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(content); tok.Value != want || tok.Extensions != nil {
			t.Fatalf("token %q, want %q (re-read on every call)", tok.Value, want)
		}
	}
	if err := os.WriteFile(path, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx); err == nil {
		t.Fatal("empty file: no error")
	}
}

// scramServer is xdg-go/scram's server holding user's credentials for pass.
func scramServer(t *testing.T, h scram.HashGeneratorFcn, user, pass string) *scram.Server {
	t.Helper()
	c, err := h.NewClientUnprepped(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	creds := c.GetStoredCredentials(scram.KeyFactors{Salt: "0123456789abcdef", Iters: 4096})
	srv, err := h.NewServer(func(u string) (scram.StoredCredentials, error) {
		if u != user {
			return scram.StoredCredentials{}, fmt.Errorf("unknown user %q", u)
		}
		return creds, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// exchange runs m against srv. tamper, if set, may change the server-final
// message before the client sees it. It returns the client's error and
// whether the server accepted the client.
func exchange(t *testing.T, m sasl.Mechanism, srv *scram.Server, tamper func([]byte) []byte) (clientErr error, serverOK bool) {
	t.Helper()
	conv := srv.NewConversation()
	s, msg, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("exchange does not end")
		}
		reply, srvErr := conv.Step(string(msg))
		if srvErr != nil && reply == "" {
			t.Fatalf("server step %d: %v", i, srvErr)
		}
		b := []byte(reply)
		if conv.Done() && tamper != nil {
			b = tamper(b)
		}
		done, resp, err := s.Challenge(b)
		if err != nil || done {
			return err, conv.Valid()
		}
		msg = resp
	}
}

func TestScram(t *testing.T) {
	for _, tc := range []struct {
		m    *sasl.Scram
		name string
		h    scram.HashGeneratorFcn
	}{
		{sasl.ScramSHA256("alice", secret), "SCRAM-SHA-256", scram.SHA256},
		{sasl.ScramSHA512("alice", secret), "SCRAM-SHA-512", scram.SHA512},
		{sasl.NewScram(sasl.SHA512, "alice", secret), "SCRAM-SHA-512", scram.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Name(); got != tc.name {
				t.Fatalf("Name = %q, want %q", got, tc.name)
			}
			srv := scramServer(t, tc.h, "alice", secret)

			t.Run("success", func(t *testing.T) {
				err, ok := exchange(t, tc.m, srv, nil)
				if err != nil || !ok {
					t.Fatalf("client error %v, server accepted %v", err, ok)
				}
				// The cached salted keys serve a second exchange too.
				if err, ok := exchange(t, tc.m, srv, nil); err != nil || !ok {
					t.Fatalf("second exchange: client error %v, server accepted %v", err, ok)
				}
			})

			t.Run("wrong password", func(t *testing.T) {
				m := sasl.NewScram(tc.m.Hash(), "alice", "not-"+secret)
				err, ok := exchange(t, m, srv, nil)
				if ok {
					t.Fatal("server accepted a wrong password")
				}
				if err == nil || !strings.Contains(err.Error(), "invalid-proof") {
					t.Fatalf("client error %v; want the server's invalid-proof", err)
				}
				noSecret(t, err.Error())
			})

			t.Run("tampered server-final", func(t *testing.T) {
				flip := func(b []byte) []byte {
					sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(b), "v="))
					if err != nil {
						t.Fatalf("server-final %q: %v", b, err)
					}
					sig[0] ^= 1
					return []byte("v=" + base64.StdEncoding.EncodeToString(sig))
				}
				err, ok := exchange(t, tc.m, srv, flip)
				if !ok {
					t.Fatal("server did not accept the client")
				}
				if err == nil || !strings.Contains(err.Error(), "server-final") {
					t.Fatalf("client error %v; want a server-final verification failure", err)
				}
				noSecret(t, err.Error())
			})

			t.Run("garbled server-final", func(t *testing.T) {
				err, _ := exchange(t, tc.m, srv, func([]byte) []byte { return []byte("x=") })
				if err == nil {
					t.Fatal("no error")
				}
			})

			t.Run("server-first without client nonce", func(t *testing.T) {
				s, _, err := tc.m.Start(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Challenge([]byte("r=forged,s=c2FsdA==,i=4096")); err == nil {
					t.Fatal("no error")
				}
			})

			t.Run("too few iterations", func(t *testing.T) {
				s, first, err := tc.m.Start(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				nonce := string(first[strings.Index(string(first), ",r=")+3:])
				if _, _, err := s.Challenge([]byte("r=" + nonce + "srv,s=c2FsdA==,i=1")); err == nil {
					t.Fatal("no error")
				}
			})
		})
	}
}

func TestScramClientFirst(t *testing.T) {
	// Kafka's form: no channel binding, no authzid, "=" and "," escaped.
	_, first, err := sasl.ScramSHA256("a=b,c", secret).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), "n,,n=a=3Db=2Cc,r=") || len(first) <= len("n,,n=a=3Db=2Cc,r=") {
		t.Fatalf("client-first %q", first)
	}
}

func TestScramRejects(t *testing.T) {
	for _, m := range []*sasl.Scram{sasl.ScramSHA256("", secret), sasl.NewScram(sasl.ScramHash(9), "u", secret)} {
		if _, _, err := m.Start(context.Background()); err == nil {
			t.Fatalf("%v: no error", m)
		} else {
			noSecret(t, err.Error())
		}
	}
}

// TestNoSecretsInOutput prints every mechanism every way fmt can.
func TestNoSecretsInOutput(t *testing.T) {
	tok := sasl.Token{Value: secret, Extensions: map[string]string{"k": "v"}}
	values := []any{
		sasl.Plain{Zid: "alice", User: "alice", Pass: secret},
		&sasl.Plain{User: "alice", Pass: secret},
		sasl.ScramSHA256("alice", secret),
		sasl.ScramSHA512("alice", secret),
		sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) { return tok, nil }},
		tok,
		&tok,
	}
	// Also as fields of an exported struct, the way a config might hold them.
	values = append(values, struct{ M sasl.Mechanism }{values[0].(sasl.Mechanism)},
		struct{ M sasl.Mechanism }{values[2].(sasl.Mechanism)})
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			noSecret(t, fmt.Sprintf(verb, v))
		}
	}
	if got := fmt.Sprint(sasl.ScramSHA512("alice", secret)); got != `SCRAM-SHA-512(user="alice")` {
		t.Errorf("String = %s", got)
	}
	if got := fmt.Sprintf("%#v", sasl.Plain{User: "alice", Pass: secret}); got != `sasl.Plain{Zid:"", User:"alice", Pass:<redacted>}` {
		t.Errorf("GoString = %s", got)
	}
}

func noSecret(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, secret) {
		t.Errorf("output contains the secret: %q", s)
	}
}

// PLAIN is one message; the server's empty reply ends the exchange.
func ExamplePlain() {
	m := sasl.Plain{User: "alice", Pass: "alice-secret"}
	s, first, err := m.Start(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s sends %q\n", m, first)
	done, _, err := s.Challenge(nil) // the server's SaslAuthenticate reply
	fmt.Println("done:", done, err)
	// Output:
	// PLAIN(user="alice") sends "\x00alice\x00alice-secret"
	// done: true <nil>
}

// A SCRAM exchange against xdg-go/scram's server: client-first,
// server-first, client-final, server-final (whose signature the client
// verifies).
func ExampleScram() {
	m := sasl.ScramSHA256("alice", "alice-secret")

	// The server side, which would be the broker.
	c, _ := scram.SHA256.NewClientUnprepped("alice", "alice-secret", "")
	creds := c.GetStoredCredentials(scram.KeyFactors{Salt: "salt-of-alice", Iters: 4096})
	srv, _ := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	conv := srv.NewConversation()

	s, msg, err := m.Start(context.Background())
	if err != nil {
		panic(err)
	}
	for round := 1; ; round++ {
		reply, _ := conv.Step(string(msg)) // sent in a SaslAuthenticate request
		done, resp, err := s.Challenge([]byte(reply))
		if err != nil {
			panic(err)
		}
		if done {
			fmt.Printf("%s authenticated after %d rounds; server accepted: %v\n", m, round, conv.Valid())
			return
		}
		msg = resp
	}
	// Output:
	// SCRAM-SHA-256(user="alice") authenticated after 2 rounds; server accepted: true
}
