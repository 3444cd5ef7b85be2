package deps

import (
	_ "github.com/gabriel-vasile/mimetype"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/hibiken/asynq"
	_ "github.com/hibiken/asynq/x/metrics"
	_ "github.com/hibiken/asynqmon"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/klauspost/compress/flate"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/robfig/cron/v3"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/sashabaranov/go-openai"
	_ "github.com/stretchr/testify/require"
	_ "gopkg.in/yaml.v3"
)
