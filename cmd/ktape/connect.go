package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/client/sasl"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// ConnectOptions hold the flags of every command that talks to Kafka: where
// the brokers are and how to reach and authenticate to them. They live at
// the top level of the config file (tls.* and sasl.* as sections), so
// backup and restore share one set of connection settings.
//
// String redacts the password, so the options can be printed safely.
type ConnectOptions struct {
	Brokers  []string
	ClientID string

	TLS                   bool
	TLSCA                 string // PEM file of CAs to trust; empty: the system's
	TLSCert, TLSKey       string // PEM client certificate and key, for mutual TLS
	TLSServerName         string
	TLSInsecureSkipVerify bool

	SASLMechanism    string // "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
	SASLUsername     string
	SASLPassword     string // also the OAUTHBEARER token
	SASLPasswordFile string // read instead of SASLPassword
}

// saslMechanisms are the values of --sasl-mechanism, as package sasl names
// them.
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}

// AddFlags registers the connection flags on fs.
func (o *ConnectOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Brokers, "brokers", nil, "bootstrap brokers, HOST:PORT[,...]")
	fs.StringVar(&o.ClientID, "client-id", client.DefaultClientID, "client id sent to the brokers (they use it in logs and quotas)")
	fs.BoolVar(&o.TLS, "tls", false, "connect with TLS (implied by the other --tls-* flags)")
	fs.StringVar(&o.TLSCA, "tls-ca", "", "PEM `FILE` of CA certificates to trust instead of the system's")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "PEM `FILE` holding a client certificate, for mutual TLS (with --tls-key)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "PEM `FILE` holding the private key of --tls-cert")
	fs.StringVar(&o.TLSServerName, "tls-server-name", "", "name the brokers' certificates must carry (default: the host dialled)")
	fs.BoolVar(&o.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "accept any broker certificate: for tests only, it allows interception")
	fs.Var(newEnumValue(&o.SASLMechanism, "", true, saslMechanisms...), "sasl-mechanism", "authenticate with SASL: "+orList(saslMechanisms))
	fs.StringVar(&o.SASLUsername, "sasl-username", "", "SASL user name (PLAIN and SCRAM)")
	fs.StringVar(&o.SASLPassword, "sasl-password", "", "SASL password or OAUTHBEARER token; prefer $KTAPE_SASL_PASSWORD or --sasl-password-file, as other users can see a command line")
	fs.StringVar(&o.SASLPasswordFile, "sasl-password-file", "", "`FILE` holding the SASL password or OAUTHBEARER token (trailing newlines dropped; a token is read again at each connection)")
	markShared(fs, "brokers", "client-id", "tls", "tls-ca", "tls-cert", "tls-key", "tls-server-name",
		"tls-insecure-skip-verify", "sasl-mechanism", "sasl-username", "sasl-password", "sasl-password-file")
	markSecret(fs, "sasl-password")
	markPath(fs, "tls-ca", "tls-cert", "tls-key", "sasl-password-file")
}

// String describes the options without the password.
func (o ConnectOptions) String() string {
	pass := ""
	if o.SASLPassword != "" {
		pass = "<redacted>"
	}
	return fmt.Sprintf("{Brokers:%v ClientID:%q TLS:%t TLSCA:%q TLSCert:%q TLSKey:%q TLSServerName:%q TLSInsecureSkipVerify:%t SASLMechanism:%q SASLUsername:%q SASLPassword:%s SASLPasswordFile:%q}",
		o.Brokers, o.ClientID, o.TLS, o.TLSCA, o.TLSCert, o.TLSKey, o.TLSServerName, o.TLSInsecureSkipVerify,
		o.SASLMechanism, o.SASLUsername, pass, o.SASLPasswordFile)
}

// GoString is String: %#v must not show the password either.
func (o ConnectOptions) GoString() string { return "main.ConnectOptions" + o.String() }

// Seeds returns the bootstrap brokers, checked to be HOST:PORT. Errors are
// usage errors naming where the value came from (src).
func (o ConnectOptions) Seeds(src sources) ([]string, error) {
	var seeds []string
	for _, b := range o.Brokers {
		b = strings.TrimSpace(b)
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, usageError{fmt.Errorf("%s: broker %q is not HOST:PORT", src.of("brokers"), b)}
		}
		seeds = append(seeds, b)
	}
	if len(seeds) == 0 {
		return nil, usageError{errors.New("no brokers: give --brokers HOST:PORT, set KTAPE_BROKERS, or set brokers in the config file")}
	}
	return seeds, nil
}

// Dialer returns the dialer the options describe: TLS and SASL as asked
// for, with certificates and password files read now, so that a missing
// or malformed file is a usage error (naming the file and where it was
// set, from src) before anything is written.
func (o ConnectOptions) Dialer(src sources) (*client.Dialer, error) {
	d := &client.Dialer{ClientID: o.ClientID, SoftwareVersion: ktapeVersion()}
	var err error
	if d.TLS, err = o.tlsConfig(src); err != nil {
		return nil, usageError{err}
	}
	if d.SASL, err = o.mechanism(src); err != nil {
		return nil, usageError{err}
	}
	return d, nil
}

// tlsConfig returns nil when TLS is off. Any --tls-* setting turns it on;
// an explicit --tls=false beside one is a contradiction, not a choice.
func (o ConnectOptions) tlsConfig(src sources) (*tls.Config, error) {
	var implied []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"tls-ca", o.TLSCA != ""}, {"tls-cert", o.TLSCert != ""}, {"tls-key", o.TLSKey != ""},
		{"tls-server-name", o.TLSServerName != ""}, {"tls-insecure-skip-verify", o.TLSInsecureSkipVerify}} {
		if f.set {
			implied = append(implied, f.name)
		}
	}
	if !o.TLS && len(implied) == 0 {
		return nil, nil
	}
	if !o.TLS && src.set("tls") {
		return nil, fmt.Errorf("%s turns TLS off, but %s asks for it", src.of("tls"), src.of(implied[0]))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName, InsecureSkipVerify: o.TLSInsecureSkipVerify}
	if o.TLSCA != "" {
		if o.TLSInsecureSkipVerify {
			return nil, fmt.Errorf("%s and %s: a CA is pointless when certificates are not verified; drop one", src.of("tls-ca"), src.of("tls-insecure-skip-verify"))
		}
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("%s: read CA certificates: %w", src.of("tls-ca"), err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", src.of("tls-ca"), o.TLSCA)
		}
	}
	switch {
	case o.TLSCert != "" && o.TLSKey != "":
		certPEM, err := os.ReadFile(o.TLSCert)
		if err != nil {
			return nil, fmt.Errorf("%s: read client certificate: %w", src.of("tls-cert"), err)
		}
		keyPEM, err := os.ReadFile(o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%s: read client key: %w", src.of("tls-key"), err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s %s and %s %s: not a PEM certificate and its key: %w", src.of("tls-cert"), o.TLSCert, src.of("tls-key"), o.TLSKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.TLSCert != "":
		return nil, fmt.Errorf("%s needs --tls-key: the client certificate's private key", src.of("tls-cert"))
	case o.TLSKey != "":
		return nil, fmt.Errorf("%s needs --tls-cert: the certificate of that key", src.of("tls-key"))
	}
	return cfg, nil
}

// mechanism returns nil without --sasl-mechanism. Credentials given without
// a mechanism are an error rather than ignored.
func (o ConnectOptions) mechanism(src sources) (sasl.Mechanism, error) {
	if o.SASLMechanism == "" {
		for _, f := range []struct{ name, v string }{
			{"sasl-username", o.SASLUsername}, {"sasl-password", o.SASLPassword}, {"sasl-password-file", o.SASLPasswordFile}} {
			if f.v != "" {
				return nil, fmt.Errorf("%s is set but not --sasl-mechanism (%s)", src.of(f.name), orList(saslMechanisms))
			}
		}
		return nil, nil
	}
	if o.SASLPassword != "" && o.SASLPasswordFile != "" {
		// Two forms of one setting: the one given with higher precedence
		// wins, as it would for one flag; at the same level, it's a mistake.
		switch p, f := src.rank("sasl-password"), src.rank("sasl-password-file"); {
		case p > f:
			o.SASLPasswordFile = ""
		case f > p:
			o.SASLPassword = ""
		default:
			return nil, fmt.Errorf("both %s and %s are set; give one", src.of("sasl-password"), src.of("sasl-password-file"))
		}
	}
	if o.SASLMechanism == "OAUTHBEARER" {
		if o.SASLUsername != "" {
			return nil, fmt.Errorf("%s: OAUTHBEARER takes no user name, only a token (--sasl-password-file or $KTAPE_SASL_PASSWORD)", src.of("sasl-username"))
		}
		if file := o.SASLPasswordFile; file != "" {
			// Read once now to fail early, then at each connection: tokens
			// expire, and whatever refreshes the file keeps ktape working.
			if _, err := readSecretFile(file); err != nil {
				return nil, fmt.Errorf("%s: %w", src.of("sasl-password-file"), err)
			}
			return sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) {
				tok, err := readSecretFile(file)
				return sasl.Token{Value: tok}, err
			}}, nil
		}
		if o.SASLPassword == "" {
			return nil, errors.New("OAUTHBEARER needs a token: give --sasl-password-file FILE or set KTAPE_SASL_PASSWORD")
		}
		tok := o.SASLPassword
		return sasl.OAuthBearer{Token: func(context.Context) (sasl.Token, error) { return sasl.Token{Value: tok}, nil }}, nil
	}
	if o.SASLUsername == "" {
		return nil, fmt.Errorf("%s %s needs a user name: give --sasl-username", src.of("sasl-mechanism"), o.SASLMechanism)
	}
	pass := o.SASLPassword
	if o.SASLPasswordFile != "" {
		var err error
		if pass, err = readSecretFile(o.SASLPasswordFile); err != nil {
			return nil, fmt.Errorf("%s: %w", src.of("sasl-password-file"), err)
		}
	}
	if pass == "" && term.IsTerminal(int(os.Stdin.Fd())) {
		var err error
		if pass, err = promptSecret(fmt.Sprintf("SASL password for %s: ", o.SASLUsername)); err != nil {
			return nil, err
		}
	}
	if pass == "" {
		return nil, fmt.Errorf("%s %s needs a password: set KTAPE_SASL_PASSWORD, give --sasl-password-file FILE, or run on a terminal to be asked", src.of("sasl-mechanism"), o.SASLMechanism)
	}
	switch o.SASLMechanism {
	case "PLAIN":
		return &sasl.Plain{User: o.SASLUsername, Pass: pass}, nil
	case "SCRAM-SHA-256":
		return sasl.ScramSHA256(o.SASLUsername, pass), nil
	case "SCRAM-SHA-512":
		return sasl.ScramSHA512(o.SASLUsername, pass), nil
	}
	// The flag's value type admits only saslMechanisms.
	return nil, fmt.Errorf("%s %q: want %s", src.of("sasl-mechanism"), o.SASLMechanism, orList(saslMechanisms))
}

// readSecretFile returns the contents of a password or token file without
// trailing line breaks, which editors and echo add. Errors name the file,
// never its contents.
func readSecretFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read password or token: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", name)
	}
	return s, nil
}

// promptSecret asks for a secret on the terminal, without echoing it.
// The prompt goes to standard error: standard output may be --json. Echo
// goes off before the prompt is shown (quietTerminal), so that nothing
// typed in answer to it can be echoed.
func promptSecret(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	restore, err := quietTerminal(fd)
	if err != nil {
		return "", fmt.Errorf("turn the terminal's echo off: %w", err)
	}
	fmt.Fprint(os.Stderr, prompt)
	var b []byte
	if restore != nil {
		b, err = readLine(os.Stdin)
		restore()
	} else {
		b, err = term.ReadPassword(fd)
	}
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read the password from the terminal: %w", err)
	}
	return string(b), nil
}

// readLine reads up to a line break, which it drops (with a carriage
// return before it).
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	var c [1]byte
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return bytes.TrimSuffix(line, []byte("\r")), nil
			}
			line = append(line, c[0])
		}
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// responseLimit bounds one broker response by a command's memory budget
// (half of it, what a backup's fetches get, and a MiB for the envelope),
// within client's default: a broker, or something posing as one, that
// announces a larger response gets an error rather than the memory. A
// record batch larger than that cannot be backed up within the budget
// anyway.
func responseLimit(memory int64) int {
	return int(min(max(memory/2+1<<20, 8<<20), client.DefaultMaxResponseSize))
}
