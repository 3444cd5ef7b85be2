-- name: StorageGetByID :one
-- Workers (no RLS) read a storage by id: the resolver, storage:sync.
SELECT * FROM storages WHERE id = @id;
