package auth

import (
	"crypto/rand"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// tokenProvider makes and reads tokens. assign runs in the apply loop
// (for simple tokens, on every member); info on any request.
type tokenProvider interface {
	// prefix is drawn by the member checking a password ("" for JWT).
	prefix() (string, error)
	assign(user string, rev uint64, prefix string, index uint64) (string, error)
	// info returns who a token stands for; rev is the store's revision
	// (a simple token is always as new as the store).
	info(token string, rev uint64) (Info, bool)
	invalidateUser(user string)
	enable()
	disable()
}

// newTokenProvider reads --auth-token (etcd's format: a type, then
// comma-separated key=value options).
func newTokenProvider(lg *zap.Logger, opts string, ttlSeconds int64) (tokenProvider, error) {
	if opts == "" {
		opts = "simple"
	}
	parts := strings.Split(opts, ",")
	kind, kv := parts[0], map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.Contains(v, "=") {
			return nil, ErrInvalidAuthOpts
		}
		if _, dup := kv[k]; dup {
			return nil, ErrInvalidAuthOpts
		}
		kv[k] = v
	}
	switch kind {
	case "simple":
		lg.Warn("simple token is not cryptographically signed")
		if ttlSeconds <= 0 {
			ttlSeconds = 300
		}
		return newSimpleTokens(time.Duration(ttlSeconds) * time.Second), nil
	case "jwt":
		return newJWTTokens(lg, kv)
	}
	lg.Warn("unknown token type", zap.String("type", kind), zap.Error(ErrInvalidAuthOpts))
	return nil, ErrInvalidAuthOpts
}

// simpleTokens are etcd's simple tokens, known to every member that
// applied their Authenticate entry. An unused token expires after ttl;
// expiry is checked when a token is read, and expired ones are swept as
// new ones come (no timer goroutine).
type simpleTokens struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	enabled bool
	tokens  map[string]simpleToken
	// sweepAt is when assign next removes expired tokens.
	sweepAt time.Time
}

type simpleToken struct {
	user    string
	expires time.Time
}

func newSimpleTokens(ttl time.Duration) *simpleTokens {
	return &simpleTokens{ttl: ttl, now: time.Now, tokens: map[string]simpleToken{}}
}

const simpleTokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func (t *simpleTokens) prefix() (string, error) {
	b := make([]byte, 16)
	n := big.NewInt(int64(len(simpleTokenLetters)))
	for i := range b {
		r, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", err
		}
		b[i] = simpleTokenLetters[r.Int64()]
	}
	return string(b), nil
}

func (t *simpleTokens) assign(user string, _ uint64, prefix string, index uint64) (string, error) {
	if prefix == "" {
		// A JWT member proposed it: this member cannot name the token.
		return "", ErrInvalidAuthOpts
	}
	token := prefix + "." + strconv.FormatUint(index, 10)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.enabled {
		return token, nil
	}
	now := t.now()
	if now.After(t.sweepAt) {
		for k, st := range t.tokens {
			if now.After(st.expires) {
				delete(t.tokens, k)
			}
		}
		t.sweepAt = now.Add(t.ttl)
	}
	t.tokens[token] = simpleToken{user: user, expires: now.Add(t.ttl)}
	return token, nil
}

func (t *simpleTokens) info(token string, rev uint64) (Info, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.tokens[token]
	now := t.now()
	if !ok || now.After(st.expires) {
		delete(t.tokens, token)
		return Info{}, false
	}
	// Each use keeps it alive another ttl, as etcd's.
	st.expires = now.Add(t.ttl)
	t.tokens[token] = st
	return Info{User: st.user, Revision: rev}, true
}

func (t *simpleTokens) invalidateUser(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, st := range t.tokens {
		if st.user == user {
			delete(t.tokens, k)
		}
	}
}

func (t *simpleTokens) enable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.enabled = true
}

func (t *simpleTokens) disable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.enabled = false
	t.tokens = map[string]simpleToken{}
}

// simpleTokenIndex parses the raft index out of "<letters>.<index>".
func simpleTokenIndex(token string) (uint64, bool) {
	_, idx, ok := strings.Cut(token, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(idx, 10, 64)
	return n, err == nil
}
