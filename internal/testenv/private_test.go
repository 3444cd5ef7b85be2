package testenv_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

func TestPrivateServersRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := testenv.StartPrivatePostgres(ctx)
	require.NoError(t, err)
	defer pg.Close()
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, pg.Stop())
	require.Error(t, conn.Ping(ctx), "the server is down")
	require.NoError(t, pg.Start(ctx))
	conn, err = pgx.Connect(ctx, pg.URL("postgres"))
	require.NoError(t, err)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, 42, v, "data survives a restart")
	conn.Close(ctx)

	rd, err := testenv.StartPrivateRedis(ctx)
	require.NoError(t, err)
	defer rd.Stop()
	c := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	rd.Stop()
	require.NoError(t, rd.Start(ctx))
	require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "a restart keeps nothing")
}
