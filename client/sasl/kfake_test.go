package sasl_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ktape/ktape/client/sasl"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// The exchange is driven by hand over ktape's protocol package, the way
// package client will: SaslHandshake v1, then SaslAuthenticate v2 rounds
// until the session is done.

const (
	handshakeV    = 1 // kfake implements only v1
	authenticateV = 2
	metadataV     = 12
	topic         = "sasl-topic"
)

// errConnClosed: the broker closed the connection instead of answering.
// kfake does this on a failed authentication where Kafka would first
// answer SASL_AUTHENTICATION_FAILED.
var errConnClosed = errors.New("connection closed by broker")

type kconn struct {
	t    *testing.T
	c    net.Conn
	corr int32
	buf  []byte
}

func dial(t *testing.T, addr string) *kconn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &kconn{t: t, c: c}
}

// roundTrip sends req at version v and decodes the response.
func (k *kconn) roundTrip(a *protocol.API, v int16, req *protocol.Record) (*protocol.Record, error) {
	k.t.Helper()
	k.corr++
	frame, err := protocol.AppendRequest(nil, req, v, k.corr, []byte("ktape-test"))
	if err != nil {
		k.t.Fatalf("encode %s v%d: %v", a, v, err)
	}
	if _, err := k.c.Write(frame); err != nil {
		return nil, closedOr(err)
	}
	k.buf, err = protocol.ReadFrame(k.c, k.buf, 1<<20)
	if err != nil {
		return nil, closedOr(err)
	}
	corr, body, err := protocol.ParseResponseHeader(k.buf, a.ResponseHeaderVersion(v))
	if err != nil {
		k.t.Fatalf("%s v%d response header: %v", a, v, err)
	}
	if corr != k.corr {
		k.t.Fatalf("%s v%d: correlation id %d, want %d", a, v, corr, k.corr)
	}
	resp, err := protocol.Decode(a.Response, v, body)
	if err != nil {
		k.t.Fatalf("decode %s v%d response: %v", a, v, err)
	}
	return resp, nil
}

func closedOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %v", errConnClosed, err)
	}
	return err
}

// authenticate runs m on k. A Kafka error code comes back as its
// *protocol.KafkaError; a connection the broker closed as errConnClosed.
func (k *kconn) authenticate(m sasl.Mechanism) (rounds int, err error) {
	k.t.Helper()
	hs := protocol.NewRecord(api.SaslHandshake.Request).SetName("Mechanism", m.Name())
	resp, err := k.roundTrip(api.SaslHandshake, handshakeV, hs)
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	if err := protocol.ErrorForCode(resp.GetName("ErrorCode").(int16)); err != nil {
		return 0, fmt.Errorf("handshake: %w (broker offers %v)", err, resp.GetName("Mechanisms"))
	}

	s, msg, err := m.Start(context.Background())
	if err != nil {
		return 0, err
	}
	for {
		if rounds++; rounds > 10 {
			k.t.Fatal("SASL exchange does not end")
		}
		req := protocol.NewRecord(api.SaslAuthenticate.Request).SetName("AuthBytes", msg)
		resp, err := k.roundTrip(api.SaslAuthenticate, authenticateV, req)
		if err != nil {
			return rounds, fmt.Errorf("round %d: %w", rounds, err)
		}
		if err := protocol.ErrorForCode(resp.GetName("ErrorCode").(int16)); err != nil {
			return rounds, fmt.Errorf("round %d: %w: %v", rounds, err, resp.GetName("ErrorMessage"))
		}
		authBytes, _ := resp.GetName("AuthBytes").([]byte)
		done, next, err := s.Challenge(authBytes)
		if err != nil {
			return rounds, err
		}
		if done {
			return rounds, nil
		}
		msg = next
	}
}

// metadata asks for the test topic and returns the broker count and the
// topic's partition count.
func (k *kconn) metadata() (brokers, partitions int, err error) {
	k.t.Helper()
	req := protocol.NewRecord(api.Metadata.Request)
	req.Append(api.Metadata.Request.Handle("Topics")).SetName("Name", topic)
	resp, err := k.roundTrip(api.Metadata, metadataV, req)
	if err != nil {
		return 0, 0, err
	}
	topics := resp.GetName("Topics").([]*protocol.Record)
	if len(topics) != 1 || topics[0].GetName("Name") != topic {
		k.t.Fatalf("metadata topics: %d", len(topics))
	}
	if err := protocol.ErrorForCode(topics[0].GetName("ErrorCode").(int16)); err != nil {
		k.t.Fatalf("metadata for %s: %v", topic, err)
	}
	return len(resp.GetName("Brokers").([]*protocol.Record)), len(topics[0].GetName("Partitions").([]*protocol.Record)), nil
}

func TestKfakeSASL(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(3),
		kfake.SeedTopics(2, topic),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "admin", "secret"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "s3cret-256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "s3cret-512"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]

	for _, tc := range []struct {
		good, bad sasl.Mechanism
		rounds    int
	}{
		{sasl.Plain{User: "admin", Pass: "secret"}, sasl.Plain{User: "admin", Pass: "wrong"}, 1},
		{sasl.ScramSHA256("scram256", "s3cret-256"), sasl.ScramSHA256("scram256", "wrong"), 2},
		{sasl.ScramSHA512("scram512", "s3cret-512"), sasl.ScramSHA512("scram512", "wrong"), 2},
	} {
		t.Run(tc.good.Name(), func(t *testing.T) {
			t.Parallel()
			t.Run("success", func(t *testing.T) {
				t.Parallel()
				k := dial(t, addr)
				rounds, err := k.authenticate(tc.good)
				if err != nil {
					t.Fatalf("%v: %v", tc.good, err)
				}
				if rounds != tc.rounds {
					t.Errorf("%d SaslAuthenticate rounds, want %d", rounds, tc.rounds)
				}
				brokers, partitions, err := k.metadata()
				if err != nil {
					t.Fatalf("metadata after authentication: %v", err)
				}
				if brokers != 3 || partitions != 2 {
					t.Fatalf("metadata: %d brokers, %d partitions; want 3 and 2", brokers, partitions)
				}
			})
			t.Run("wrong password", func(t *testing.T) {
				t.Parallel()
				k := dial(t, addr)
				rounds, err := k.authenticate(tc.bad)
				switch {
				case errors.Is(err, protocol.ErrorForCode(58)): // SASL_AUTHENTICATION_FAILED, as Kafka answers
				case errors.Is(err, errConnClosed): // kfake: closes without an answer
					t.Logf("kfake closed the connection instead of answering SASL_AUTHENTICATION_FAILED: %v", err)
				default:
					t.Fatalf("err = %v; want SASL_AUTHENTICATION_FAILED or a closed connection", err)
				}
				if rounds != tc.rounds {
					t.Errorf("failed in round %d, want %d (the round carrying the proof)", rounds, tc.rounds)
				}
				if _, _, err := k.metadata(); err == nil {
					t.Fatal("metadata answered on a connection that failed authentication")
				}
			})
			t.Run("wrong user", func(t *testing.T) {
				t.Parallel()
				var m sasl.Mechanism = sasl.Plain{User: "nobody", Pass: "secret"}
				if s, ok := tc.good.(*sasl.Scram); ok {
					m = sasl.NewScram(s.Hash(), "nobody", "secret")
				}
				if _, err := dial(t, addr).authenticate(m); err == nil {
					t.Fatal("unknown user authenticated")
				}
			})
		})
	}

	t.Run("unsupported mechanism", func(t *testing.T) {
		t.Parallel()
		k := dial(t, addr)
		_, err := k.authenticate(sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) {
			return sasl.Token{Value: "t"}, nil
		}})
		if !errors.Is(err, protocol.ErrorForCode(33)) { // UNSUPPORTED_SASL_MECHANISM
			t.Fatalf("err = %v; want UNSUPPORTED_SASL_MECHANISM", err)
		}
	})

	t.Run("handshake lists mechanisms", func(t *testing.T) {
		t.Parallel()
		k := dial(t, addr)
		resp, err := k.roundTrip(api.SaslHandshake, handshakeV,
			protocol.NewRecord(api.SaslHandshake.Request).SetName("Mechanism", "GSSAPI"))
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetName("Mechanisms").([]string)
		for _, want := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			if !slices.Contains(got, want) {
				t.Errorf("mechanisms %v lack %s", got, want)
			}
		}
	})

	t.Run("metadata before authentication", func(t *testing.T) {
		t.Parallel()
		if _, _, err := dial(t, addr).metadata(); !errors.Is(err, errConnClosed) {
			t.Fatalf("err = %v; want the broker to close the connection", err)
		}
	})
}
