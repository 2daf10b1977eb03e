package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sealed log entries. A coordinator with a cluster key seals every command
// it proposes: the entry is
//
//	gaia-sealed-1 <key id> <hex HMAC-SHA256>\n<command JSON>
//
// and every replica verifies the MAC before applying it. The key never
// enters the log or the snapshot; the key ID (a one-way function of the
// key) does. Once the cluster recorded its key ID (OpCluster), an entry
// that is not sealed, or whose MAC does not verify, is refused and changes
// nothing: a peer that can reach the Raft port but does not hold the key
// cannot commit a change, whatever principal it claims. This is the second
// line behind the mutually authenticated TLS transport (internal/gaia).

const (
	sealMagic = "gaia-sealed-1 "
	// MinKeyBytes is the shortest cluster key accepted.
	MinKeyBytes = 32
	// maxSealHeader bounds the header line: magic, key ID, MAC.
	maxSealHeader = len(sealMagic) + 16 + 1 + 64
)

// KeyID returns the public identifier of a cluster key: 16 hex digits of
// HMAC-SHA256(key, "lbsys gaia key id"). It tells keys apart without
// revealing them.
func KeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lbsys gaia key id"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

func entryMAC(key, cmd []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("gaia-sealed-1\n"))
	m.Write(cmd)
	return m.Sum(nil)
}

// Seal wraps an encoded command in an authenticated envelope.
func Seal(key, cmd []byte) []byte {
	var b bytes.Buffer
	b.Grow(maxSealHeader + 1 + len(cmd))
	b.WriteString(sealMagic)
	b.WriteString(KeyID(key))
	b.WriteByte(' ')
	b.WriteString(hex.EncodeToString(entryMAC(key, cmd)))
	b.WriteByte('\n')
	b.Write(cmd)
	return b.Bytes()
}

// envelope is a parsed log entry.
type envelope struct {
	sealed bool
	keyID  string
	mac    []byte
	cmd    []byte
}

// openEntry splits a log entry into its envelope and command, without
// verifying (the machine does, with its key). An entry without the magic
// prefix is a bare command (development clusters, entries written before
// sealing).
func openEntry(data []byte) (envelope, error) {
	if !bytes.HasPrefix(data, []byte(sealMagic)) {
		return envelope{cmd: data}, nil
	}
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 || nl > maxSealHeader {
		return envelope{}, errors.New("sealed entry: header line missing or too long")
	}
	fields := bytes.Fields(data[len(sealMagic):nl])
	if len(fields) != 2 || len(fields[0]) != 16 || len(fields[1]) != 64 {
		return envelope{}, fmt.Errorf("sealed entry: want `%s<key id> <mac>`", sealMagic)
	}
	mac, err := hex.DecodeString(string(fields[1]))
	if err != nil {
		return envelope{}, fmt.Errorf("sealed entry: MAC is not hex: %v", err)
	}
	if _, err := hex.DecodeString(string(fields[0])); err != nil {
		return envelope{}, fmt.Errorf("sealed entry: key id is not hex: %v", err)
	}
	return envelope{sealed: true, keyID: string(fields[0]), mac: mac, cmd: data[nl+1:]}, nil
}

// SetKey gives this replica the cluster key that seals entries (nil: none).
// It is local configuration, like a file path: it is not part of the
// replicated state or the snapshot, and every replica of a sealed cluster
// must hold the same key.
func (m *Machine) SetKey(key []byte) error {
	if key == nil {
		m.key, m.keyID = nil, ""
		return nil
	}
	if len(key) < MinKeyBytes {
		return fmt.Errorf("cluster key: %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	m.key = append([]byte(nil), key...)
	m.keyID = KeyID(key)
	return nil
}

// ApplyEntry verifies and applies one committed log entry as it is stored
// in the Raft log (see Seal). A sealed entry is verified with this
// replica's key; an unsealed one is accepted only while the cluster has not
// recorded a key ID. A refused entry changes nothing at all, not even the
// clock: its time is not trusted either.
func (m *Machine) ApplyEntry(index uint64, data []byte) Result {
	env, err := openEntry(data)
	if err != nil {
		if m.KeyID != "" {
			return Result{Err: errf(CodeUnauthenticated, "entry %d refused: %v", index, err)}
		}
		if index > m.Index {
			m.Index = index
		}
		return Result{Err: errf(CodeBadCommand, "undecodable log entry %d: %v", index, err)}
	}
	sealedBy := ""
	if env.sealed {
		switch {
		case m.key == nil:
			return Result{Err: errf(CodeKeyMismatch, "entry %d is sealed with cluster key %s and this coordinator has no cluster key: start it with the cluster's credentials (--tls-dir)", index, env.keyID)}
		case env.keyID != m.keyID:
			return Result{Err: errf(CodeKeyMismatch, "entry %d is sealed with cluster key %s, this coordinator holds key %s: give it the cluster's cluster.key (--tls-dir)", index, env.keyID, m.keyID)}
		case !hmac.Equal(env.mac, entryMAC(m.key, env.cmd)):
			return Result{Err: errf(CodeUnauthenticated, "entry %d refused: its seal does not verify with cluster key %s (forged or corrupted)", index, env.keyID)}
		}
		sealedBy = env.keyID
	} else if m.KeyID != "" {
		return Result{Err: errf(CodeUnauthenticated, "entry %d refused: not sealed, and this cluster seals every entry with key %s (a peer without the cluster key proposed it)", index, m.KeyID)}
	}
	c, err := Decode(env.cmd)
	if err != nil {
		if index > m.Index {
			m.Index = index
		}
		return Result{Err: errf(CodeBadCommand, "undecodable log entry %d: %v", index, err)}
	}
	return m.apply(index, c, sealedBy)
}
