package ledger

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// RecordOpsLogout remembers that the ops console session identified by
// sessionID (the random part of its cookie) was logged out, until expires
// (the session's own expiry: after it the cookie is refused anyway). Only
// a SHA-256 of sessionID is stored. Logging out twice is not an error.
// Expired rows are pruned on the way.
func (l *Ledger) RecordOpsLogout(ctx context.Context, sessionID string, expires time.Time) error {
	sum := sha256.Sum256([]byte(sessionID))
	if _, err := l.db.Exec(ctx, `WITH pruned AS (DELETE FROM ops_logouts WHERE expires_at < now())
		INSERT INTO ops_logouts (session_hash, expires_at) VALUES ($1, $2) ON CONFLICT (session_hash) DO NOTHING`,
		sum[:], expires); err != nil {
		return fmt.Errorf("ledger: recording an ops logout: %w", err)
	}
	return nil
}

// OpsLoggedOut reports whether the session identified by sessionID was
// logged out (RecordOpsLogout).
func (l *Ledger) OpsLoggedOut(ctx context.Context, sessionID string) (bool, error) {
	sum := sha256.Sum256([]byte(sessionID))
	var out bool
	if err := l.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ops_logouts WHERE session_hash = $1)`, sum[:]).Scan(&out); err != nil {
		return false, fmt.Errorf("ledger: checking an ops logout: %w", err)
	}
	return out, nil
}
