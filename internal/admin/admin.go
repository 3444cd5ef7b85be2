// Package admin holds the operator's command-line actions (creating organizations,
// creating, listing and revoking API tokens), kept out of cmd so they are tested like the rest.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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

// Scope is one permission a token carries. Scopes are independent: each route of
// the API needs exactly one (its Route.Scope), and a token may hold any set.
type Scope string

// The scopes. ScopeRead is every GET; ScopeUpload creating files, getting upload
// URLs and registering, revalidating and pre-annotating versions; ScopeManage
// everything that changes projects, people, jobs, matching and exports.
const (
	ScopeRead   Scope = "read"
	ScopeUpload Scope = "upload"
	ScopeManage Scope = "manage"
)

// AllScopes is every scope, in order; a token created without --scopes has them all,
// as every token made before scopes existed does.
var AllScopes = []Scope{ScopeRead, ScopeUpload, ScopeManage}

// ParseScopes reads a comma-separated scope list such as "read,upload".
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, part := range strings.Split(s, ",") {
		sc := Scope(strings.ToLower(strings.TrimSpace(part)))
		if sc == "" {
			continue
		}
		if !slices.Contains(AllScopes, sc) {
			return nil, fmt.Errorf("unknown scope %q (want some of read, upload, manage)", part)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scope given (want some of read, upload, manage)")
	}
	return out, nil
}

// Token is a created token; Secret is shown once.
type Token struct {
	OrgID     int64
	TokenID   int64
	Secret    string
	Scopes    []Scope
	ExpiresAt *time.Time
}

// TokenOptions are a new token's optional settings.
type TokenOptions struct {
	// Scopes defaults to AllScopes.
	Scopes []Scope
	// TTL, when positive, makes the token expire that long after its creation.
	TTL time.Duration
}

// CreateToken creates a token with every scope and no expiry for the organization
// named orgName, creating the organization when it does not exist.
func CreateToken(ctx context.Context, pool *pgxpool.Pool, orgName, tokenName string) (Token, error) {
	return CreateTokenWith(ctx, pool, orgName, tokenName, TokenOptions{})
}

// CreateTokenWith is CreateToken with scopes and an expiry.
func CreateTokenWith(ctx context.Context, pool *pgxpool.Pool, orgName, tokenName string, opts TokenOptions) (Token, error) {
	orgName = strings.TrimSpace(orgName)
	scopes := opts.Scopes
	if len(scopes) == 0 {
		scopes = AllScopes
	}
	var expires *time.Time
	if opts.TTL > 0 {
		e := time.Now().Add(opts.TTL).UTC().Truncate(time.Second)
		expires = &e
	} else if opts.TTL < 0 {
		return Token{}, fmt.Errorf("token expiry %s: must be positive", opts.TTL)
	}
	var out Token
	err := database.Tx(ctx, pool, func(q *db.Queries, _ pgx.Tx) error {
		org, err := q.OrganizationGetOrCreate(ctx, orgName)
		if err != nil {
			return fmt.Errorf("organization %q: %w", orgName, err)
		}
		orgID := org.ID
		secret, hash := NewToken()
		tok, err := q.APITokenCreate(ctx, db.APITokenCreateParams{
			OrgID: orgID, Name: tokenName, TokenHash: hash, Scopes: scopeStrings(scopes), ExpiresAt: expires,
		})
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		out = Token{OrgID: orgID, TokenID: tok.ID, Secret: secret, Scopes: scopes, ExpiresAt: tok.ExpiresAt}
		return nil
	})
	return out, err
}

func scopeStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

// TokenInfo is what an operator may see of a token: never its secret or hash.
type TokenInfo struct {
	ID         int64
	OrgID      int64
	OrgName    string
	Name       string
	Scopes     []string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
}

// ListTokens lists every token, newest first, or only orgName's when it is not empty.
func ListTokens(ctx context.Context, pool *pgxpool.Pool, orgName string) ([]TokenInfo, error) {
	var org *string
	if orgName = strings.TrimSpace(orgName); orgName != "" {
		org = &orgName
	}
	rows, err := db.New(pool).APITokenList(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]TokenInfo, len(rows))
	for i, r := range rows {
		out[i] = TokenInfo{
			ID: r.ID, OrgID: r.OrgID, OrgName: r.OrgName, Name: r.Name, Scopes: r.Scopes,
			CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt,
		}
	}
	return out, nil
}

// ErrTokenNotFound is RevokeToken's answer for an id no token has.
var ErrTokenNotFound = errors.New("no API token has this id (see `labelq token list`)")

// RevokeToken revokes the token with this id; the API refuses it from then on.
// Revoking a revoked token succeeds and keeps the first revocation time.
func RevokeToken(ctx context.Context, pool *pgxpool.Pool, id int64) (time.Time, error) {
	r, err := db.New(pool).APITokenRevoke(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("revoke token %d: %w", id, ErrTokenNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke token %d: %w", id, err)
	}
	if r.RevokedAt == nil {
		return time.Time{}, fmt.Errorf("revoke token %d: not revoked", id)
	}
	return *r.RevokedAt, nil
}
