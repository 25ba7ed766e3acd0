// Package kfaketest starts franz-go's kfake in-process for tests: a fake
// Kafka cluster on random loopback ports, optionally with seeded topics,
// SASL and TLS, closed when the test ends. Its helpers produce and read
// back records with franz-go's kgo client, so that what a test wrote
// through ktape is checked by an independent, real decoder (kfake itself
// never parses records).
//
// Everything here is for tests: failures call t.Fatal, so call the helpers
// from the test's own goroutine.
package kfaketest

import (
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// DefaultBrokers is the number of brokers Start runs without Brokers.
const DefaultBrokers = 3

// Option configures Start.
type Option func(*config)

type config struct {
	brokers   int
	topics    []topics
	users     []user
	tlsServer *tls.Config
	tlsClient *tls.Config
	kfake     []kfake.Opt
}

type topics struct {
	partitions int
	names      []string
}

type user struct{ mechanism, name, pass string }

// Brokers sets the number of brokers (default DefaultBrokers).
func Brokers(n int) Option { return func(c *config) { c.brokers = n } }

// Topics creates the named topics with the given number of partitions when
// the cluster starts (none by default; kfake does not create topics on
// demand unless told to through KfakeOpts). Partitions ≤ 0 means kfake's
// default of 10. It can be given more than once.
func Topics(partitions int, names ...string) Option {
	return func(c *config) { c.topics = append(c.topics, topics{partitions, names}) }
}

// SASL turns on SASL authentication and adds a superuser: mechanism is
// "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". It can be given more than
// once; a user can have credentials for several mechanisms. The cluster's
// own clients (Client, Produce, ConsumeAll) log in as the first user given.
// Without SASL, connections are not authenticated.
func SASL(mechanism, name, pass string) Option {
	return func(c *config) { c.users = append(c.users, user{mechanism, name, pass}) }
}

// TLS makes every broker listen with TLS using server. The cluster's own
// clients dial with client, which must trust server's certificate and, if
// server requires one, carry a client certificate; TLSConfigs makes a
// matching pair. Without TLS, brokers listen in plain text.
func TLS(server, client *tls.Config) Option {
	return func(c *config) { c.tlsServer, c.tlsClient = server, client }
}

// KfakeOpts passes options straight to kfake.NewCluster, after the ones
// this package derives from its own options, so they win over them.
// Don't pass kfake.Ports: fixed ports collide when packages' tests run in
// parallel.
func KfakeOpts(opts ...kfake.Opt) Option {
	return func(c *config) { c.kfake = append(c.kfake, opts...) }
}

// Cluster is a running kfake cluster. Its methods are safe for concurrent
// use, but the helpers that take a testing.TB must be called from that
// test's goroutine.
type Cluster struct {
	kf        *kfake.Cluster
	addrs     []string
	mechanism sasl.Mechanism // nil without SASL
	tlsClient *tls.Config    // nil without TLS
}

// Start starts a kfake cluster on random 127.0.0.1 ports and closes it
// when t ends.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cfg := config{brokers: DefaultBrokers}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.brokers < 1 {
		t.Fatalf("kfaketest: %d brokers; need at least 1", cfg.brokers)
	}
	if cfg.tlsServer != nil && cfg.tlsClient == nil {
		t.Fatal("kfaketest: TLS needs a client config for the cluster's own clients")
	}

	c := &Cluster{tlsClient: cfg.tlsClient}
	kopts := []kfake.Opt{kfake.NumBrokers(cfg.brokers)}
	for _, tp := range cfg.topics {
		kopts = append(kopts, kfake.SeedTopics(int32(tp.partitions), tp.names...))
	}
	if len(cfg.users) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range cfg.users {
			kopts = append(kopts, kfake.Superuser(u.mechanism, u.name, u.pass))
		}
		first := cfg.users[0]
		switch first.mechanism {
		case "PLAIN":
			c.mechanism = plain.Auth{User: first.name, Pass: first.pass}.AsMechanism()
		case "SCRAM-SHA-256":
			c.mechanism = scram.Auth{User: first.name, Pass: first.pass}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			c.mechanism = scram.Auth{User: first.name, Pass: first.pass}.AsSha512Mechanism()
		}
		for _, u := range cfg.users {
			switch u.mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				t.Fatalf("kfaketest: SASL mechanism %q; kfake supports PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512", u.mechanism)
			}
		}
	}
	if cfg.tlsServer != nil {
		kopts = append(kopts, kfake.TLS(cfg.tlsServer))
	}
	kopts = append(kopts, cfg.kfake...)

	kf, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatalf("kfaketest: start kfake: %v", err)
	}
	t.Cleanup(kf.Close)
	c.kf = kf
	c.addrs = kf.ListenAddrs()
	return c
}

// Addrs returns the brokers' host:port addresses, for bootstrap.servers.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// Kfake returns the kfake cluster, for its control and fault-injection
// methods (ControlKey, Fault, CreateTopic, ...).
func (c *Cluster) Kfake() *kfake.Cluster { return c.kf }

// Client returns a kgo client for the cluster, with the cluster's TLS and
// SASL settings followed by opts, and closes it when t ends.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl := c.newClient(t, opts...)
	t.Cleanup(cl.Close)
	return cl
}

func (c *Cluster) newClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(c.addrs...)}
	if c.tlsClient != nil {
		base = append(base, kgo.DialTLSConfig(c.tlsClient.Clone()))
	}
	if c.mechanism != nil {
		base = append(base, kgo.SASL(c.mechanism))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kfaketest: kgo client: %v", err)
	}
	return cl
}
