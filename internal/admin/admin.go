// Package admin holds the operator's command-line actions (creating organizations and
// API tokens), kept out of cmd so they are tested like the rest.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
)

// TokenPrefix starts every labelq API token, so a leaked one is recognisable to
// secret scanners.
const TokenPrefix = "lq_"

// NewToken returns a fresh secret and its SHA-256, which is all labelq stores.
func NewToken() (secret string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret)
}

// HashToken is the stored form of a token.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Token is a created token; Secret is shown once.
type Token struct {
	OrgID   int64
	TokenID int64
	Secret  string
}

// CreateToken creates a token for the organization named orgName, creating the
// organization when it does not exist.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, orgName, tokenName string) (Token, error) {
	orgName = strings.TrimSpace(orgName)
	var out Token
	err := database.Tx(ctx, pool, func(q *db.Queries, _ pgx.Tx) error {
		org, err := q.OrganizationGetOrCreate(ctx, orgName)
		if err != nil {
			return fmt.Errorf("organization %q: %w", orgName, err)
		}
		orgID := org.ID
		secret, hash := NewToken()
		tok, err := q.APITokenCreate(ctx, db.APITokenCreateParams{OrgID: orgID, Name: tokenName, TokenHash: hash, Scopes: []string{}})
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		out = Token{OrgID: orgID, TokenID: tok.ID, Secret: secret}
		return nil
	})
	return out, err
}
