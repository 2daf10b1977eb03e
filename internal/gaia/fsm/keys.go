package fsm

import (
	"strconv"
	"time"

	"github.com/lbsys/lbsys/api/change"
)

// Idempotency keys: a retried proposal or decision with the same key, by
// the same principal, returns the first result instead of acting twice.

// scopedKey is an idempotency key as stored: scoped by the principal, so
// that one principal's key never answers another's request.
func scopedKey(by, key string) string {
	return strconv.Itoa(len(by)) + ":" + by + "/" + key
}

// maxKeyBytes bounds an idempotency key (it is kept in the state).
const maxKeyBytes = 128

func checkKey(key string) *Error {
	if len(key) > maxKeyBytes {
		return errf(CodeInvalid, "idempotency_key: at most %d bytes, got %d", maxKeyBytes, len(key))
	}
	return nil
}

func (m *Machine) recordKey(by, key string, id uint64, now time.Time) {
	if key == "" {
		return
	}
	k := scopedKey(by, key)
	if _, ok := m.Keys[k]; ok {
		return
	}
	m.Keys[k] = id
	m.KeyLog = append(m.KeyLog, KeyStamp{Key: k, At: now})
}

// keyed returns the change an earlier request with this key produced.
func (m *Machine) keyed(by, key string) (*change.Change, *Error, bool) {
	if key == "" {
		return nil, nil, false
	}
	id, ok := m.Keys[scopedKey(by, key)]
	if !ok {
		return nil, nil, false
	}
	if ch := m.Changes[id]; ch != nil {
		return ch, nil, true
	}
	return nil, errf(CodeConflict, "idempotency key %q was used for change %d, which is closed and archived (the state keeps the newest %d closed changes); check the archive, or use a new key for a new request", key, id, m.Policy.ClosedChangeLimit), true
}

// expireKeys forgets idempotency keys older than the TTL (by log time).
func (m *Machine) expireKeys(now time.Time) {
	ttl := m.Policy.IdempotencyKeyTTL.Std()
	n := 0
	for n < len(m.KeyLog) && now.Sub(m.KeyLog[n].At) > ttl {
		delete(m.Keys, m.KeyLog[n].Key)
		n++
	}
	if n > 0 {
		m.KeyLog = m.KeyLog[n:]
		if len(m.KeyLog) == 0 {
			m.KeyLog = nil
		}
	}
}
