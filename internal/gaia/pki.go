package gaia

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// The cluster's credentials (docs/coordinator.md, "Securing the Raft
// transport"): a cluster CA that signs one certificate per node, used both
// to serve and to dial the Raft port (mutual TLS), and a cluster key that
// seals every log entry (fsm.Seal). `lbsys coordinator init-tls` creates
// them in one directory:
//
//	ca.crt        the cluster CA (every node trusts only it)
//	ca.key        the CA's key: needed only to add nodes; keep it offline
//	<id>.crt/.key node <id>'s certificate and key
//	cluster.key   64 hex digits: the key that seals log entries
//
// A node needs ca.crt, its own <id>.crt and <id>.key, and cluster.key.

// Credential file names inside a --tls-dir.
const (
	CAFile         = "ca.crt"
	CAKeyFile      = "ca.key"
	ClusterKeyFile = "cluster.key"
)

// nodeURIPrefix marks a node certificate: its URI SAN is
// urn:lbsys:gaia:node:<id>. Peers accept only certificates that carry one,
// so a certificate the CA issued for something else cannot speak Raft.
const nodeURIPrefix = "urn:lbsys:gaia:node:"

// NodeSpec names a node to issue a certificate for and the addresses
// (IPs or DNS names) its Raft port is reached at.
type NodeSpec struct {
	ID    string
	Hosts []string
}

// ParseNodeSpec reads `n1=10.0.0.1,gaia-1.example` (the --node flag).
func ParseNodeSpec(s string) (NodeSpec, error) {
	id, hosts, ok := strings.Cut(s, "=")
	id = strings.TrimSpace(id)
	if !ok || strings.TrimSpace(hosts) == "" {
		return NodeSpec{}, fmt.Errorf("--node %q: want ID=HOST[,HOST...], e.g. n1=10.0.0.1 (the addresses of its --raft-addr)", s)
	}
	if !validNodeID(id) {
		return NodeSpec{}, fmt.Errorf("--node %q: node ID %q: use letters, digits, `.`, `_` and `-` (at most 64), as in --id", s, id)
	}
	spec := NodeSpec{ID: id}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip == nil && !validDNSName(h) {
			return NodeSpec{}, fmt.Errorf("--node %q: %q is neither an IP address nor a DNS name", s, h)
		}
		spec.Hosts = append(spec.Hosts, h)
	}
	return spec, nil
}

func validNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// InitTLS creates (or extends) a credentials directory: the CA and the
// cluster key when missing, and a certificate for each node given. It
// never overwrites: a node whose certificate exists is an error (delete
// both of its files to reissue). It returns the files it created.
func InitTLS(dir string, nodes []NodeSpec, validFor time.Duration) ([]string, error) {
	if len(nodes) == 0 {
		return nil, errors.New("init-tls: name at least one node with --node ID=HOST[,HOST...]")
	}
	if validFor <= 0 {
		validFor = 2 * 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--dir: %w", err)
	}
	for _, n := range nodes {
		for _, f := range []string{n.ID + ".crt", n.ID + ".key"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return nil, fmt.Errorf("%s exists: node %s already has credentials; delete %s.crt and %s.key to reissue them", filepath.Join(dir, f), n.ID, n.ID, n.ID)
			}
		}
	}
	var created []string
	now := time.Now()
	caCert, caKey, made, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	created = append(created, made...)
	keyPath := filepath.Join(dir, ClusterKeyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := writeNew(keyPath, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
			return nil, err
		}
		created = append(created, keyPath)
	} else if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		u, _ := url.Parse(nodeURIPrefix + n.ID)
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: n.ID, OrganizationalUnit: []string{"lbsys gaia node"}},
			NotBefore:    now.Add(-5 * time.Minute),
			NotAfter:     now.Add(validFor),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:         []*url.URL{u},
		}
		for _, h := range n.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		cp, kp := filepath.Join(dir, n.ID+".crt"), filepath.Join(dir, n.ID+".key")
		if err := writeNew(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			return nil, err
		}
		if err := writeNew(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, err
		}
		created = append(created, cp, kp)
	}
	return created, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return n
}

func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []string, error) {
	cp, kp := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	_, cerr := os.Stat(cp)
	_, kerr := os.Stat(kp)
	switch {
	case cerr == nil && kerr == nil:
		cb, err := os.ReadFile(cp)
		if err != nil {
			return nil, nil, nil, err
		}
		certs, err := parseCertsPEM(cb, cp)
		if err != nil {
			return nil, nil, nil, err
		}
		kb, err := os.ReadFile(kp)
		if err != nil {
			return nil, nil, nil, err
		}
		key, err := parseKeyPEM(kb, kp)
		if err != nil {
			return nil, nil, nil, err
		}
		ek, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, nil, fmt.Errorf("%s: not an ECDSA key; init-tls signs with the CA it created", kp)
		}
		return certs[0], ek, nil, nil
	case cerr == nil || kerr == nil:
		return nil, nil, nil, fmt.Errorf("%s has only one of %s and %s: a CA needs both to sign node certificates", dir, CAFile, CAKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "lbsys gaia cluster CA " + hex.EncodeToString(serial().Bytes())[:8]},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := writeNew(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, nil, nil, err
	}
	if err := writeNew(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, nil, err
	}
	return cert, key, []string{cp, kp}, nil
}

// writeNew creates path with mode, failing if it exists.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Credentials are what a node needs to join an authenticated cluster.
type Credentials struct {
	// CA verifies peers' certificates: only the cluster CA.
	CA *x509.CertPool
	// Cert is this node's certificate and key, presented both when
	// serving and when dialing the Raft port. Nil: no TLS (only with a
	// test transport, or on loopback).
	Cert *tls.Certificate
	// NodeID is the node ID Cert was issued for.
	NodeID string
	// ClusterKey seals log entries (fsm.Seal). Nil: entries not sealed.
	ClusterKey []byte
	// Dir is where the credentials were read (for messages).
	Dir string
	// Warnings are problems worth logging that do not stop the node
	// (e.g. a key readable by other users, a certificate expiring soon).
	Warnings []string
}

// LoadCredentials reads node id's credentials from dir (see InitTLS).
func LoadCredentials(dir, id string) (*Credentials, error) {
	c := &Credentials{Dir: dir}
	read := func(name string, secret bool) ([]byte, error) {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("--tls-dir %s: %s is missing; create the cluster's credentials with `lbsys coordinator init-tls --dir %s --node %s=<raft host>`", dir, name, dir, id)
			}
			return nil, fmt.Errorf("--tls-dir: %w", err)
		}
		if secret && fi.Mode().Perm()&0o077 != 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s is readable by other users (mode %v): chmod 600 it", p, fi.Mode().Perm()))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--tls-dir: %w", err)
		}
		return b, nil
	}
	caPEM, err := read(CAFile, false)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(id+".crt", false)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(id+".key", true)
	if err != nil {
		return nil, err
	}
	keyText, err := read(ClusterKeyFile, true)
	if err != nil {
		return nil, err
	}
	if c.ClusterKey, err = ParseClusterKey(keyText); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ClusterKeyFile), err)
	}
	cas, err := parseCertsPEM(caPEM, filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	c.CA = x509.NewCertPool()
	for _, ca := range cas {
		if !ca.IsCA {
			return nil, fmt.Errorf("%s: %q is not a CA certificate", filepath.Join(dir, CAFile), ca.Subject.CommonName)
		}
		c.CA.AddCert(ca)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-dir %s: %s and %s do not form a key pair: %v", dir, id+".crt", id+".key", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, id+".crt"), err)
		}
		cert.Leaf = leaf
	}
	c.NodeID = NodeIDFromCert(leaf)
	if c.NodeID != id {
		return nil, fmt.Errorf("%s is the certificate of node %q, not of --id %s", filepath.Join(dir, id+".crt"), c.NodeID, id)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.CA, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s is not valid under %s: %v (reissue it with init-tls on the same --dir)", filepath.Join(dir, id+".crt"), filepath.Join(dir, CAFile), err)
	}
	if left := time.Until(leaf.NotAfter); left < 30*24*time.Hour {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s expires on %s: reissue it (delete it and its key, run init-tls --node %s=... on the directory holding ca.key)", filepath.Join(dir, id+".crt"), leaf.NotAfter.UTC().Format(time.RFC3339), id))
	}
	c.Cert = &cert
	return c, nil
}

// ParseClusterKey reads a cluster key file: hex digits (at least 64, i.e.
// 32 bytes) on the first line; blank lines and surrounding space ignored.
func ParseClusterKey(b []byte) ([]byte, error) {
	if len(b) > 4096 {
		return nil, errors.New("cluster key file larger than 4 KiB: it holds one line of hex digits")
	}
	s := strings.TrimSpace(string(b))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		rest := strings.TrimSpace(s[i:])
		s = strings.TrimSpace(s[:i])
		if rest != "" {
			return nil, errors.New("cluster key file: one line of hex digits expected, found more lines")
		}
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("cluster key: not hex digits (%v); init-tls writes 64 of them", err)
	}
	if len(k) < fsm.MinKeyBytes {
		return nil, fmt.Errorf("cluster key: %d bytes, want at least %d (%d hex digits)", len(k), fsm.MinKeyBytes, 2*fsm.MinKeyBytes)
	}
	return k, nil
}

// NodeIDFromCert returns the node ID of a Gaia node certificate ("" if it
// is not one).
func NodeIDFromCert(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	for _, u := range c.URIs {
		if s := u.String(); strings.HasPrefix(s, nodeURIPrefix) {
			if id := strings.TrimPrefix(s, nodeURIPrefix); validNodeID(id) {
				return id
			}
		}
	}
	return ""
}

func parseCertsPEM(b []byte, name string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%s: not PEM (or trailing garbage after the last certificate)", name)
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %q block where certificates were expected", name, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", name)
	}
	return out, nil
}

func parseKeyPEM(b []byte, name string) (any, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not a PEM key", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}
