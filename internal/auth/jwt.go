package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// jwtTokens are etcd's JWT tokens: signed claims {username, revision,
// exp}. Nothing is kept per token: any member with the key verifies one.
// A member given only a public key verifies but cannot sign
// (ErrVerifyOnly).
type jwtTokens struct {
	lg     *zap.Logger
	ttl    time.Duration
	method jwt.SigningMethod
	// key signs (a private key or an HMAC secret) or, verify-only, is a
	// public key.
	key        any
	verifyOnly bool
}

// newJWTTokens reads etcd's options: sign-method (required), pub-key and
// priv-key (PEM files; an HMAC method takes its secret from priv-key),
// ttl (a duration, default 5m).
func newJWTTokens(lg *zap.Logger, opts map[string]string) (*jwtTokens, error) {
	t := &jwtTokens{lg: lg, ttl: 5 * time.Minute}
	var unknown []string
	for k := range opts {
		switch k {
		case "sign-method", "pub-key", "priv-key", "ttl":
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		lg.Warn("unknown JWT options", zap.Strings("keys", unknown))
	}
	var err error
	if s := opts["ttl"]; s != "" {
		if t.ttl, err = time.ParseDuration(s); err != nil {
			lg.Error("problem loading JWT options", zap.Error(err))
			return nil, ErrInvalidAuthOpts
		}
	}
	var pubPEM, privPEM []byte
	if f := opts["pub-key"]; f != "" {
		if pubPEM, err = os.ReadFile(f); err != nil {
			lg.Error("problem loading JWT options", zap.Error(err))
			return nil, ErrInvalidAuthOpts
		}
	}
	if f := opts["priv-key"]; f != "" {
		if privPEM, err = os.ReadFile(f); err != nil {
			lg.Error("problem loading JWT options", zap.Error(err))
			return nil, ErrInvalidAuthOpts
		}
	}
	if t.method = jwt.GetSigningMethod(opts["sign-method"]); t.method == nil {
		lg.Error("problem loading JWT options", zap.Error(ErrInvalidAuthMethod))
		return nil, ErrInvalidAuthOpts
	}
	var priv crypto.Signer
	var pub crypto.PublicKey
	switch t.method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(privPEM) == 0 {
			return nil, ErrMissingKey
		}
		t.key = privPEM
		return t, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		priv, pub, err = parseKeys(privPEM, pubPEM, jwt.ParseRSAPrivateKeyFromPEM, jwt.ParseRSAPublicKeyFromPEM)
	case *jwt.SigningMethodECDSA:
		priv, pub, err = parseKeys(privPEM, pubPEM, jwt.ParseECPrivateKeyFromPEM, jwt.ParseECPublicKeyFromPEM)
	case *jwt.SigningMethodEd25519:
		priv, pub, err = parseKeys(privPEM, pubPEM,
			func(b []byte) (ed25519.PrivateKey, error) {
				k, err := jwt.ParseEdPrivateKeyFromPEM(b)
				if err != nil {
					return nil, err
				}
				return k.(ed25519.PrivateKey), nil
			},
			func(b []byte) (ed25519.PublicKey, error) {
				k, err := jwt.ParseEdPublicKeyFromPEM(b)
				if err != nil {
					return nil, err
				}
				return k.(ed25519.PublicKey), nil
			})
	default:
		return nil, fmt.Errorf("unsupported signing method: %T", t.method)
	}
	if err != nil {
		return nil, err
	}
	if priv != nil {
		t.key = priv
	} else {
		t.key, t.verifyOnly = pub, true
	}
	return t, nil
}

// parseKeys parses a private and a public key, either optional but not
// both, and refuses a pair that does not match.
func parseKeys[Priv crypto.Signer, Pub crypto.PublicKey](privPEM, pubPEM []byte,
	parsePriv func([]byte) (Priv, error), parsePub func([]byte) (Pub, error)) (crypto.Signer, crypto.PublicKey, error) {
	var priv crypto.Signer
	var pub crypto.PublicKey
	if len(privPEM) > 0 {
		k, err := parsePriv(privPEM)
		if err != nil {
			return nil, nil, err
		}
		priv = k
	}
	if len(pubPEM) > 0 {
		k, err := parsePub(pubPEM)
		if err != nil {
			return nil, nil, err
		}
		pub = k
	}
	switch {
	case priv == nil && pub == nil:
		return nil, nil, ErrMissingKey
	case priv != nil && pub != nil:
		if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(priv.Public()) {
			return nil, nil, ErrKeyMismatch
		}
	}
	return priv, pub, nil
}

func (t *jwtTokens) prefix() (string, error) { return "", nil }

func (t *jwtTokens) assign(user string, rev uint64, _ string, _ uint64) (string, error) {
	if t.verifyOnly {
		return "", ErrVerifyOnly
	}
	tk := jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": user,
		"revision": rev,
		"exp":      time.Now().Add(t.ttl).Unix(),
	})
	return tk.SignedString(t.key)
}

func (t *jwtTokens) verifyKey() any {
	switch k := t.key.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	}
	return t.key
}

func (t *jwtTokens) info(token string, _ uint64) (Info, bool) {
	parsed, err := jwt.Parse(token, func(tk *jwt.Token) (any, error) {
		if tk.Method.Alg() != t.method.Alg() {
			return nil, errors.New("invalid signing method")
		}
		return t.verifyKey(), nil
	}, jwt.WithExpirationRequired())
	if err != nil {
		t.lg.Warn("failed to parse a JWT token", zap.Error(err))
		return Info{}, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok || !parsed.Valid {
		return Info{}, false
	}
	user, ok := claims["username"].(string)
	if !ok {
		return Info{}, false
	}
	rev, ok := claims["revision"].(float64)
	if !ok {
		return Info{}, false
	}
	return Info{User: user, Revision: uint64(rev)}, true
}

func (t *jwtTokens) invalidateUser(string) {}
func (t *jwtTokens) enable()               {}
func (t *jwtTokens) disable()              {}
