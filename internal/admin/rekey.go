package admin

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
)

// Rekey seals again, under the keyring's current key, every storage's credentials
// sealed under an older one: the second half of rotating LABELQ_SECRET_KEY (put the
// new kid:key first, keep the old one, run this, then drop the old one). It
// returns how many storages were sealed again; a storage whose credentials do not
// open is an error naming it (nothing of the credentials is printed).
func Rekey(ctx context.Context, pool *pgxpool.Pool, keys *storage.Keyring) (int, error) {
	if keys == nil {
		return 0, storage.ErrNoKeyring
	}
	q := db.New(pool)
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
