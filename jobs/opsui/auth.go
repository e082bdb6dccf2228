package opsui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sessions are HMAC-signed cookies: the cookie holds
// "expiry.nonce.signature" with the signature an HMAC-SHA256 under a key
// derived from the admin token. So every serve process accepts the same
// session without a row per login, and changing STORESYNC_ADMIN_TOKEN
// logs everybody out. Logout is the one shared state: it records the
// nonce (hashed) in the ledger until the session's expiry, so a copy of
// the cookie stops working too (Console.session).
const (
	sessionCookie = "storesync_ops"
	loginCookie   = "storesync_ops_login" // double-submit CSRF token of the login form
	csrfField     = "csrf"
)

type auth struct {
	// enabled is false when no admin token is configured: then no login
	// ever succeeds, and the answer looks exactly like a wrong token.
	enabled  bool
	tokenSum [32]byte
	key      []byte
	ttl      time.Duration
	now      func() time.Time
	secure   bool
}

func newAuth(adminToken string, ttl time.Duration, now func() time.Time, secure bool) *auth {
	a := &auth{enabled: adminToken != "", ttl: ttl, now: now, secure: secure}
	a.tokenSum = sha256.Sum256([]byte(adminToken))
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("storesync ops session key v1"))
	a.key = m.Sum(nil)
	if !a.enabled {
		// A random key: no cookie could have been signed with it.
		a.key = make([]byte, 32)
		_, _ = rand.Read(a.key)
	}
	return a
}

// checkToken compares a typed token with the admin token in constant
// time (both hashed first, so the length does not leak either).
func (a *auth) checkToken(got string) bool {
	sum := sha256.Sum256([]byte(got))
	ok := subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
	return ok && a.enabled
}

func (a *auth) sign(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSession returns a fresh session cookie value.
func (a *auth) newSession() string {
	exp := strconv.FormatInt(a.now().Add(a.ttl).Unix(), 10)
	nonce := randomString()
	return exp + "." + nonce + "." + a.sign("session", exp, nonce)
}

// session returns the request's valid session value, or "".
func (a *auth) session(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return ""
	}
	if !hmac.Equal([]byte(parts[2]), []byte(a.sign("session", parts[0], parts[1]))) {
		return ""
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || a.now().Unix() >= exp {
		return ""
	}
	return c.Value
}

// sessionID returns the random part of a valid session value (what a
// logout records) and its expiry.
func sessionID(session string) (string, time.Time) {
	exp, rest, _ := strings.Cut(session, ".")
	nonce, _, _ := strings.Cut(rest, ".")
	sec, _ := strconv.ParseInt(exp, 10, 64)
	return nonce, time.Unix(sec, 0)
}

// csrfToken is bound to the session: a token from another session (or a
// guess) does not pass.
func (a *auth) csrfToken(session string) string { return a.sign("csrf", session) }

// checkCSRF requires the form field to match the session's token.
func (a *auth) checkCSRF(r *http.Request, session string) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && hmac.Equal([]byte(got), []byte(a.csrfToken(session)))
}

func (a *auth) setCookie(w http.ResponseWriter, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: a.secure,
	})
}

// sameOrigin reports whether a state-changing request came from our own
// pages, by the browser's Sec-Fetch-Site or Origin headers. It guards
// River UI's API, whose JavaScript cannot send our CSRF token; a request
// without either header (curl, old browsers) is refused too.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	o = strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://")
	return o == r.Host
}
