package api_test

import (
	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/outbox"
)

func minioOpts() minio.PutObjectOptions { return minio.PutObjectOptions{} }

func relayFor(a *app.App) *outbox.Relay {
	return &outbox.Relay{Pool: a.Pool, Client: a.Client, Log: a.Log, BatchSize: 100}
}
