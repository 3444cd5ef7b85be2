package admin

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// Rekey seals again, under the keyring's current key, every storage's credentials
// and every webhook endpoint's signing secrets sealed under an older one: the second half of rotating LABELQ_SECRET_KEY (put the
// new kid:key first, keep the old one, run this, then drop the old one). It
// returns how many storages were sealed again; a storage whose credentials do not
// open is an error naming it (nothing of the credentials is printed).
func Rekey(ctx context.Context, pool *pgxpool.Pool, keys *storage.Keyring) (int, error) {
	if keys == nil {
		return 0, storage.ErrNoKeyring
	}
	n, err := rekeyStorages(ctx, db.New(pool), keys)
	if err != nil {
		return n, err
	}
	w, err := rekeyWebhooks(ctx, db.New(pool), keys)
	return n + w, err
}

func rekeyStorages(ctx context.Context, q *db.Queries, keys *storage.Keyring) (int, error) {
	n := 0
	for {
		rows, err := q.StorageListSealedByOtherKey(ctx, db.StorageListSealedByOtherKeyParams{CurrentKeyID: keys.Current(), MaxRows: 500})
		if err != nil {
			return n, fmt.Errorf("list storages to seal again: %w", err)
		}
		if len(rows) == 0 {
			return n, nil
		}
		for _, r := range rows {
			aad := storage.CredentialsAAD(r.OrgID)
			plain, err := keys.Open(r.Credentials, *r.CredentialsKeyID, aad)
			if err != nil {
				return n, fmt.Errorf("storage %d: %w", r.ID, err)
			}
			sealed, kid, err := keys.Seal(plain, aad)
			if err != nil {
				return n, err
			}
			done, err := q.StorageReseal(ctx, db.StorageResealParams{
				ID: r.ID, Credentials: sealed, CredentialsKeyID: kid, OldKeyID: *r.CredentialsKeyID, OldCredentials: r.Credentials,
			})
			if err != nil {
				return n, fmt.Errorf("storage %d: %w", r.ID, err)
			}
			n += int(done)
		}
	}
}

// rekeyWebhooks seals again each endpoint's current secret, and its previous one
// while a rotation's overlap keeps it, when either is under an older key.
func rekeyWebhooks(ctx context.Context, q *db.Queries, keys *storage.Keyring) (int, error) {
	rows, err := q.WebhookEndpointListSealed(ctx, keys.Current())
	if err != nil {
		return 0, fmt.Errorf("list webhook endpoints to seal again: %w", err)
	}
	n := 0
	for _, r := range rows {
		reseal := func(sealed []byte, kid string) ([]byte, string, error) {
			plain, err := delivery.OpenSecret(keys, r.OrgID, sealed, kid)
			if err != nil {
				return nil, "", fmt.Errorf("webhook endpoint %d: %w", r.ID, err)
			}
			return delivery.SealSecret(keys, r.OrgID, plain)
		}
		p := db.WebhookEndpointResealParams{ID: r.ID, OldSecret: r.Secret}
		if p.Secret, p.SecretKeyID, err = reseal(r.Secret, r.SecretKeyID); err != nil {
			return n, err
		}
		if r.PreviousSecret != nil && r.PreviousSecretKeyID != nil {
			prev, kid, err := reseal(r.PreviousSecret, *r.PreviousSecretKeyID)
			if err != nil {
				return n, err
			}
			p.PreviousSecret, p.PreviousSecretKeyID = prev, &kid
		}
		done, err := q.WebhookEndpointReseal(ctx, p)
		if err != nil {
			return n, fmt.Errorf("webhook endpoint %d: %w", r.ID, err)
		}
		n += int(done)
	}
	return n, nil
}
