package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ktape/ktape/client/sasl"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// Defaults of a zero Dialer.
const (
	DefaultClientID        = "ktape"
	DefaultDialTimeout     = 10 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
	DefaultMaxResponseSize = 256 << 20 // matches DefaultMaxDecompressed in package record
	DefaultMaxInFlight     = 5
)

// A Dialer opens authenticated connections to brokers. The zero value dials
// plaintext without SASL, with the defaults above. A Dialer is safe for
// concurrent use and must not be modified while in use.
type Dialer struct {
	ClientID string
	// TLS, if non-nil, wraps every connection. Server verification stays
	// on unless the config turns it off.
	TLS *tls.Config
	// SASL, if non-nil, authenticates every connection after ApiVersions.
	SASL            sasl.Mechanism
	DialTimeout     time.Duration
	RequestTimeout  time.Duration
	MaxResponseSize int
	MaxInFlight     int
	// Pool receives response buffers; nil means a pool of the Dialer's own.
	Pool *BufferPool
	// SoftwareVersion is sent to brokers as the client software version
	// (KIP-511); empty means "dev".
	SoftwareVersion string

	defaultPool BufferPool
}

type connOptions struct {
	clientID       string
	softwareVer    string
	requestTimeout time.Duration
	maxResponse    int
	maxInFlight    int
	pool           *BufferPool
}

func (d *Dialer) options() *connOptions {
	o := &connOptions{clientID: d.ClientID, softwareVer: d.SoftwareVersion, requestTimeout: d.RequestTimeout,
		maxResponse: d.MaxResponseSize, maxInFlight: d.MaxInFlight, pool: d.Pool}
	if o.softwareVer == "" {
		o.softwareVer = "dev"
	}
	if o.clientID == "" {
		o.clientID = DefaultClientID
	}
	if o.requestTimeout <= 0 {
		o.requestTimeout = DefaultRequestTimeout
	}
	if o.maxResponse <= 0 {
		o.maxResponse = DefaultMaxResponseSize
	}
	if o.maxInFlight <= 0 {
		o.maxInFlight = DefaultMaxInFlight
	}
	if o.pool == nil {
		o.pool = &d.defaultPool
	}
	return o
}

// Dial connects to addr, negotiates API versions and authenticates.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Conn, error) {
	timeout := d.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, &ConnError{Addr: addr, Err: err, Retriable: true}
	}
	if d.TLS != nil {
		cfg := d.TLS.Clone()
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, &ConnError{Addr: addr, Err: fmt.Errorf("TLS handshake: %w", err)}
		}
		nc = tc
	}
	c := newConn(nc, addr, d.options())
	if err := c.negotiate(dctx, d.options().softwareVer); err != nil {
		c.Close()
		return nil, err
	}
	if d.SASL != nil {
		if err := c.authenticate(dctx, d.SASL); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// apiVersionsMax is the ApiVersions version ktape asks with first.
const apiVersionsMax = 4

// negotiate asks the broker which versions it supports. A broker that
// does not know the requested ApiVersions version answers with
// UNSUPPORTED_VERSION and its own range, in a v0 body (KIP-511); ktape then
// asks again with the highest version the broker supports.
func (c *Conn) negotiate(ctx context.Context, softwareVersion string) error {
	v := int16(apiVersionsMax)
	for attempt := 0; attempt < 2; attempt++ {
		req := protocol.NewRecord(api.ApiVersions.Request)
		if v >= 3 {
			req.SetName("ClientSoftwareName", "ktape").SetName("ClientSoftwareVersion", softwareVersion)
		}
		resp, err := c.Do(ctx, req, v, 0)
		if err != nil {
			return err
		}
		rec, derr := protocol.Decode(api.ApiVersions.Response, v, resp.Body)
		if derr != nil {
			// An UNSUPPORTED_VERSION answer is a v0 body.
			rec, derr = protocol.Decode(api.ApiVersions.Response, 0, resp.Body)
		}
		resp.Release()
		if derr != nil {
			return &ConnError{Addr: c.addr, Err: fmt.Errorf("ApiVersions v%d response: %w", v, derr)}
		}
		code := rec.Int16(api.ApiVersions.Response.Handle("ErrorCode"))
		keys := api.ApiVersions.Response.Handle("ApiKeys")
		if code == 35 && attempt == 0 { // UNSUPPORTED_VERSION
			bmax := int16(-1)
			for _, k := range rec.Elems(keys) {
				if k.Int16(k.Schema().Handle("ApiKey")) == api.ApiVersions.Key {
					bmax = k.Int16(k.Schema().Handle("MaxVersion"))
				}
			}
			if bmax < 0 {
				return &ConnError{Addr: c.addr, Err: errors.New("broker rejected ApiVersions without saying which versions it supports")}
			}
			v = min(bmax, apiVersionsMax)
			continue
		}
		if err := protocol.ErrorForCode(code); err != nil {
			return &ConnError{Addr: c.addr, Err: fmt.Errorf("ApiVersions: %w", err)}
		}
		for _, k := range rec.Elems(keys) {
			s := k.Schema()
			key := k.Int16(s.Handle("ApiKey"))
			if key >= 0 && int(key) < apiKeyLimit {
				c.versions[key] = versionRange{min: k.Int16(s.Handle("MinVersion")), max: k.Int16(s.Handle("MaxVersion")), ok: true}
			}
		}
		return nil
	}
	return &ConnError{Addr: c.addr, Err: errors.New("ApiVersions negotiation did not converge")}
}

// authenticate runs SaslHandshake and SaslAuthenticate for mechanism m.
func (c *Conn) authenticate(ctx context.Context, m sasl.Mechanism) error {
	hv, err := c.Version(api.SaslHandshake)
	if err != nil {
		return err
	}
	if hv < 1 {
		// v0 is followed by raw SASL frames instead of SaslAuthenticate
		// requests: only brokers older than 1.0 need it.
		return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: errors.New("broker supports only SaslHandshake v0 (Kafka before 1.0)")}
	}
	hs := protocol.NewRecord(api.SaslHandshake.Request).SetName("Mechanism", m.Name())
	resp, err := c.Do(ctx, hs, hv, 0)
	if err != nil {
		return err
	}
	hrec, err := protocol.Decode(api.SaslHandshake.Response, hv, resp.Body)
	resp.Release()
	if err != nil {
		return &ConnError{Addr: c.addr, Err: err}
	}
	if err := protocol.ErrorForCode(hrec.Int16(api.SaslHandshake.Response.Handle("ErrorCode"))); err != nil {
		return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: fmt.Errorf("handshake: %w (broker offers %v)", err, hrec.GetName("Mechanisms"))}
	}
	av, err := c.Version(api.SaslAuthenticate)
	if err != nil {
		return err
	}
	sess, msg, err := m.Start(ctx)
	if err != nil {
		return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: err}
	}
	ar := api.SaslAuthenticate.Response
	for step := 0; ; step++ {
		if step > 10 {
			return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: errors.New("too many round trips")}
		}
		req := protocol.NewRecord(api.SaslAuthenticate.Request).SetName("AuthBytes", nonNil(msg))
		resp, err := c.Do(ctx, req, av, 0)
		if err != nil {
			return err
		}
		rec, err := protocol.Decode(ar, av, resp.Body)
		resp.Release()
		if err != nil {
			return &ConnError{Addr: c.addr, Err: err}
		}
		if err := protocol.ErrorForCode(rec.Int16(ar.Handle("ErrorCode"))); err != nil {
			return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: fmt.Errorf("%w: %s", err, rec.String(ar.Handle("ErrorMessage")))}
		}
		done, next, err := sess.Challenge(rec.Bytes(ar.Handle("AuthBytes")))
		if err != nil {
			if next != nil {
				// A mechanism may owe the server a last message even when
				// failing (OAUTHBEARER's %x01 after an error, RFC 7628).
				final := protocol.NewRecord(api.SaslAuthenticate.Request).SetName("AuthBytes", next)
				if resp, serr := c.Do(ctx, final, av, 0); serr == nil {
					resp.Release()
				}
			}
			return &AuthError{Addr: c.addr, Mechanism: m.Name(), Err: err}
		}
		if done {
			return nil
		}
		msg = next
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// AuthError is a failed SASL authentication. Its message never contains
// credentials.
type AuthError struct {
	Addr      string
	Mechanism string
	Err       error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("client: SASL %s authentication to %s failed: %v", e.Mechanism, e.Addr, e.Err)
}
func (e *AuthError) Unwrap() error { return e.Err }
