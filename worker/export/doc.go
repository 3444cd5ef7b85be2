// Package export is the project:export worker: it streams a project's approved
// results and files into one ZIP written straight into object storage, hashing every
// byte on the way, with live progress, a manifest and a download link.
package export
