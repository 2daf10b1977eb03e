package gaia

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is a raft.StreamLayer over mutual TLS: every Raft connection,
// in either direction, presents a node certificate of the cluster CA and
// verifies the peer's (TLS 1.3, client certificates required). Beyond the
// CA, the peer must be a member: a certificate whose node ID is not in the
// Raft configuration is refused (once the node knows one), and the node
// dialed at a member's address must present that member's certificate. A
// peer that cannot present such a certificate never gets to send an RPC.
type tlsStream struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	// members returns the Raft configuration: node ID -> address (empty
	// while the node has none: before bootstrap or join, the CA decides).
	members func() map[string]string
	log     *slog.Logger

	refused atomic.Uint64
	logMu   sync.Mutex
	lastLog time.Time
	quiet   int // refusals not logged since lastLog
}

// handshakeTimeout bounds an incoming TLS handshake, so that a peer that
// connects and says nothing holds no goroutine for long.
const handshakeTimeout = 10 * time.Second

func newTLSStream(bind string, advertise net.Addr, creds *Credentials, members func() map[string]string, log *slog.Logger) (*tlsStream, error) {
	if creds == nil || creds.Cert == nil || creds.CA == nil {
		return nil, errors.New("raft TLS: credentials incomplete")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &tlsStream{ln: ln, advertise: advertise, members: members, log: log}
	s.server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*creds.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    creds.CA,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.checkPeer(cs, "")
		},
	}
	s.client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*creds.Cert},
		RootCAs:      creds.CA,
	}
	return s, nil
}

// checkPeer runs after the chain and (when dialing) the host name were
// verified against the cluster CA: the certificate must be a node
// certificate of a member, and the member registered at the dialed address.
func (s *tlsStream) checkPeer(cs tls.ConnectionState, dialed raft.ServerAddress) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no peer certificate")
	}
	leaf := cs.PeerCertificates[0]
	id := NodeIDFromCert(leaf)
	if id == "" {
		return fmt.Errorf("certificate %q is not a Gaia node certificate (no %s URI): issue node certificates with `lbsys coordinator init-tls`", leaf.Subject.CommonName, nodeURIPrefix)
	}
	members := s.members()
	if len(members) == 0 {
		return nil // not bootstrapped or joined yet: the CA vouches
	}
	if _, ok := members[id]; !ok {
		return fmt.Errorf("node %s is not a member of this cluster (members: %d); add it with --join first", id, len(members))
	}
	if dialed != "" {
		for mid, addr := range members {
			if addr == string(dialed) && mid != id {
				return fmt.Errorf("the node at %s presented the certificate of %s, but %s is the member at that address", dialed, id, mid)
			}
		}
	}
	return nil
}

// refuse records a refused incoming connection and logs it, at most once a
// second (a scan or a flood must not flood the log).
func (s *tlsStream) refuse(remote net.Addr, err error) {
	n := s.refused.Add(1)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if time.Since(s.lastLog) < time.Second {
		s.quiet++
		return
	}
	s.log.Warn("raft: refused a connection that did not authenticate as a cluster member",
		"remote", remote.String(), "err", err, "refused_total", n, "not_logged_since_last", s.quiet)
	s.lastLog, s.quiet = time.Now(), 0
}

// Accept implements net.Listener. The TLS handshake is not done here (a
// slow peer would stall every other connection) but on the connection's
// first read or write, with a deadline.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, s.server), s: s}, nil
}

// Close implements net.Listener.
func (s *tlsStream) Close() error { return s.ln.Close() }

// Addr implements net.Listener: the advertised address.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer: TLS to address, verifying that the
// server's certificate is the cluster CA's, valid for the address's host,
// and the member's registered there.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, err
	}
	cfg := s.client.Clone()
	cfg.ServerName = host
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return s.checkPeer(cs, address) }
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	return d.DialContext(ctx, "tcp", string(address))
}

// serverConn does the TLS handshake of an accepted connection on first
// use. A failed handshake reads as EOF, so the Raft transport closes the
// connection quietly (the refusal is logged here, rate-limited).
type serverConn struct {
	*tls.Conn
	s    *tlsStream
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := c.Conn.Handshake(); err != nil {
			c.err = err
			c.s.refuse(c.Conn.RemoteAddr(), err)
			return
		}
		c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if c.handshake() != nil {
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

var _ raft.StreamLayer = (*tlsStream)(nil)
