-- name: OrganizationCreate :one
INSERT INTO organizations (name) VALUES ($1)
RETURNING *;

-- name: OrganizationGet :one
SELECT * FROM organizations WHERE id = $1 AND deleted_at IS NULL;

-- name: OrganizationGetOrCreate :one
INSERT INTO organizations (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
RETURNING *;
