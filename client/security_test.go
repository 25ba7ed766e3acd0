package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/client/sasl"
	"github.com/ktape/ktape/internal/kfaketest"
)

// TLS with certificates made in the test: verified by default, mutual,
// and refused without the CA.
func TestDialTLS(t *testing.T) {
	server, clientCfg := kfaketest.TLSConfigs(t)
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"), kfaketest.TLS(server, clientCfg))
	ctx := context.Background()

	cl, err := client.New(ctx, c.Addrs(), &client.Dialer{TLS: clientCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.RefreshMetadata(ctx, []string{"t"}); err != nil {
		t.Fatal(err)
	}

	noCA := &tls.Config{Certificates: clientCfg.Certificates}
	d := &client.Dialer{TLS: noCA}
	if _, err := d.Dial(ctx, c.Addrs()[0]); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dial without the CA: %v", err)
	}
	noCert := &tls.Config{RootCAs: clientCfg.RootCAs}
	d = &client.Dialer{TLS: noCert, SASL: nil}
	if conn, err := d.Dial(ctx, c.Addrs()[0]); err == nil {
		conn.Close()
		t.Fatal("mTLS broker accepted a client without a certificate")
	}
}

// SASL PLAIN and SCRAM through the Dialer, and a wrong password refused
// with an error that does not contain it.
func TestDialSASL(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"),
		kfaketest.SASL("PLAIN", "alice", "plain-secret"),
		kfaketest.SASL("SCRAM-SHA-256", "bob", "scram256-secret"),
		kfaketest.SASL("SCRAM-SHA-512", "carol", "scram512-secret"))
	ctx := context.Background()
	for _, m := range []sasl.Mechanism{
		sasl.Plain{User: "alice", Pass: "plain-secret"},
		sasl.NewScram(sasl.SHA256, "bob", "scram256-secret"),
		sasl.NewScram(sasl.SHA512, "carol", "scram512-secret"),
	} {
		cl, err := client.New(ctx, c.Addrs(), &client.Dialer{SASL: m})
		if err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		if _, err := cl.RefreshMetadata(ctx, []string{"t"}); err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		cl.Close()
	}
	for _, m := range []sasl.Mechanism{
		sasl.Plain{User: "alice", Pass: "wrong-pass-1"},
		sasl.NewScram(sasl.SHA256, "bob", "wrong-pass-2"),
	} {
		d := &client.Dialer{SASL: m}
		_, err := d.Dial(ctx, c.Addrs()[0])
		if err == nil {
			t.Fatalf("%s: wrong password accepted", m.Name())
		}
		if strings.Contains(err.Error(), "wrong-pass") {
			t.Fatalf("%s: error leaks the password: %v", m.Name(), err)
		}
		var ae *client.AuthError
		var ce *client.ConnError
		if !errors.As(err, &ae) && !errors.As(err, &ce) {
			t.Fatalf("%s: %T %v", m.Name(), err, err)
		}
	}
}
