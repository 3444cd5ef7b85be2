-- name: OrganizationCreate :one
INSERT INTO organizations (name) VALUES ($1)
RETURNING *;

-- name: OrganizationGetOrCreate :one
INSERT INTO organizations (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
RETURNING *;
