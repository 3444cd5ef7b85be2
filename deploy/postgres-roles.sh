#!/bin/sh
# Run once by the postgres image when its volume is new (docker-compose.yml mounts it
# in /docker-entrypoint-initdb.d): the login roles labelq's migrations expect
# (migrations/00008), with the passwords from .env, since the image asks for one over
# the network. `labelq migrate up` finds them, makes labelq_api_login a member of
# labelq_api and grants both their privileges.
set -eu
: "${LABELQ_API_DB_PASSWORD:?set LABELQ_API_DB_PASSWORD}"
: "${LABELQ_WORKER_DB_PASSWORD:?set LABELQ_WORKER_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v api_pw="$LABELQ_API_DB_PASSWORD" -v worker_pw="$LABELQ_WORKER_DB_PASSWORD" <<'SQL'
CREATE ROLE labelq_api_login LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD :'api_pw';
CREATE ROLE labelq_worker LOGIN NOSUPERUSER BYPASSRLS PASSWORD :'worker_pw';
SQL
