// Package storage is labelq's object store: one bucket in MinIO or any S3, reached
// through minio-go. Uploads, LLM outputs and export archives all live here.
package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config says where the bucket is.
type Config struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	UseTLS    bool
}

// Store is a bucket with its client.
type Store struct {
	Client *minio.Client
	Bucket string
}

// New builds a client; it does not contact the server.
func New(cfg Config) (*Store, error) {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseTLS,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", cfg.Endpoint, err)
	}
	return &Store{Client: c, Bucket: cfg.Bucket}, nil
}

// EnsureBucket creates the bucket when it does not exist.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ok, err := s.Client.BucketExists(ctx, s.Bucket)
	if err != nil {
		return fmt.Errorf("check bucket %q at %s: %w (is MinIO running? see `make services`)", s.Bucket, s.Client.EndpointURL().Host, err)
	}
	if ok {
		return nil
	}
	if err := s.Client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "BucketAlreadyOwnedByYou" || er.Code == "BucketAlreadyExists") {
			return nil
		}
		return fmt.Errorf("create bucket %q: %w", s.Bucket, err)
	}
	return nil
}

// Ping checks the bucket is reachable, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.Client.BucketExists(ctx, s.Bucket)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("bucket %q does not exist", s.Bucket)
	}
	return nil
}

// PresignGet returns a short-lived download URL for key.
func (s *Store) PresignGet(ctx context.Context, key, downloadName string, ttl time.Duration) (*url.URL, error) {
	params := url.Values{}
	if downloadName != "" {
		params.Set("response-content-disposition", fmt.Sprintf("attachment; filename=%q", downloadName))
	}
	return s.Client.PresignedGetObject(ctx, s.Bucket, key, ttl, params)
}

// PresignPut returns a short-lived upload URL for key.
func (s *Store) PresignPut(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	return s.Client.PresignedPutObject(ctx, s.Bucket, key, ttl)
}

// IsNotFound reports whether err says the object or bucket does not exist.
func IsNotFound(err error) bool {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode == http.StatusNotFound || er.Code == "NoSuchKey" || er.Code == "NoSuchBucket"
	}
	return false
}
