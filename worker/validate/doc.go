// Package validate is the file:validate worker: it streams an uploaded file version
// out of object storage, verifies its bytes against every reference there is, and
// marks it valid, corrupt, missing or rejected, queueing the next pipeline steps when
// it is valid.
package validate
