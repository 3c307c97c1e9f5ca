package klingapi

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetimes Kling's documentation gives for the JWT: valid for 30
// minutes, and from 5 seconds ago to absorb clock skew.
const (
	tokenLifetime = 1800 * time.Second
	tokenSkew     = 5 * time.Second
	// tokenRefresh is how long before expiry a cached token is replaced, so
	// a request never leaves with a token that expires on the way (code 1004).
	tokenRefresh = 5 * time.Minute
)

// Credentials authenticate requests. Set AccessKey and SecretKey for the
// JWT style, or APIKey for the static bearer style; APIKey wins when both
// are set.
type Credentials struct {
	AccessKey string
	SecretKey string
	APIKey    string
}

// Valid reports whether the credentials name one complete auth style.
func (c Credentials) Valid() bool {
	return c.APIKey != "" || (c.AccessKey != "" && c.SecretKey != "")
}

// String never prints a secret.
func (c Credentials) String() string {
	switch {
	case c.APIKey != "":
		return "api-key"
	case c.AccessKey != "":
		return "jwt(iss=" + c.AccessKey + ")"
	}
	return "none"
}

// tokenSource hands out bearer tokens, minting and caching JWTs.
type tokenSource struct {
	creds Credentials
	now   func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// bearer returns the token for the Authorization header.
func (ts *tokenSource) bearer() (string, error) {
	if ts.creds.APIKey != "" {
		return ts.creds.APIKey, nil
	}
	now := ts.now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && now.Add(tokenRefresh).Before(ts.expires) {
		return ts.token, nil
	}
	tok, err := MintJWT(ts.creds.AccessKey, ts.creds.SecretKey, now)
	if err != nil {
		return "", err
	}
	ts.token, ts.expires = tok, now.Add(tokenLifetime)
	return tok, nil
}

// MintJWT returns the HS256 token Kling expects for an access key and secret
// key at time now.
func MintJWT(accessKey, secretKey string, now time.Time) (string, error) {
	claims := jwt.RegisteredClaims{
		Issuer:    accessKey,
		ExpiresAt: jwt.NewNumericDate(now.Add(tokenLifetime)),
		NotBefore: jwt.NewNumericDate(now.Add(-tokenSkew)),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secretKey))
	if err != nil {
		return "", fmt.Errorf("klingapi: sign token: %w", err)
	}
	return tok, nil
}

// ParseJWT checks a token minted by MintJWT against the secret of the
// access key it names; lookup returns that secret. It returns the access
// key. The simulator uses it to play Kling's side, with Kling's codes: an
// expired token or one not yet valid is ErrTokenExpired or
// ErrTokenNotYetValid, anything else ErrAuth.
func ParseJWT(token string, lookup func(accessKey string) (string, bool), now time.Time) (string, error) {
	var iss string
	_, err := jwt.ParseWithClaims(token, &jwt.RegisteredClaims{}, func(t *jwt.Token) (any, error) {
		c, _ := t.Claims.(*jwt.RegisteredClaims)
		iss = c.Issuer
		secret, ok := lookup(iss)
		if !ok {
			return nil, fmt.Errorf("unknown access key")
		}
		return []byte(secret), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithExpirationRequired())
	switch {
	case err == nil:
		return iss, nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "", ErrTokenNotYetValid
	default:
		return "", ErrAuth
	}
}
