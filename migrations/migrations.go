// Package migrations embeds labelq's SQL migrations so the binary can apply them
// (labelq migrate up|down) without the source tree. sqlc reads the same files as the
// schema, so the database and the generated code cannot drift apart.
package migrations

import "embed"

// FS holds every migration, named NNNNN_description.sql in goose format.
//
//go:embed *.sql
var FS embed.FS
