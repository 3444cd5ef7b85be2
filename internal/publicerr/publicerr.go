// Package publicerr turns errors into the text a tenant may read on a row
// (file_versions.validation_error, llm_runs.error, export_logs.error).
//
// Transport errors name the deployment's insides: host names, addresses,
// ports, URLs of storage and of the model endpoint. A tenant gets a plain
// reason instead ("storage unavailable"); the operator finds the full error
// in the logs, which the callers write next to the row. Reasons that are
// already written for people (a checksum mismatch with its figures, a
// provider's own error message) pass through unchanged.
package publicerr

import (
	"context"
	"errors"
	"net"
	"net/url"
	"regexp"
	"syscall"
)

// Plain reasons, for the place a transport error came from.
const (
	Storage = "storage unavailable; labelq will try again"
	Model   = "model endpoint unavailable; labelq will try again"
)

// Reason is err's text when a tenant may read it, else fallback (one of the
// constants above). A nil err gives "".
func Reason(err error, fallback string) string {
	if err == nil {
		return ""
	}
	if transport(err) {
		return fallback
	}
	return Text(err.Error(), fallback)
}

// Text is msg when it names nothing of the deployment (no address, host:port
// or URL), else fallback.
func Text(msg, fallback string) string {
	if revealing.MatchString(msg) {
		return fallback
	}
	return msg
}

// revealing matches what must not reach a tenant: IPv4 and bracketed IPv6
// addresses, URLs, dotted or local host names with a port, and Go's dialer
// and resolver wording.
var revealing = regexp.MustCompile(`(?i)` +
	`\b\d{1,3}(?:\.\d{1,3}){3}\b` + // 10.0.0.7
	`|\[[0-9a-f:.%a-z]*:[0-9a-f:.%a-z]*\]` + // [::1]
	`|\b[a-z][a-z0-9+.-]*://` + // http://minio:9000
	`|\b(?:[a-z0-9-]+\.)+[a-z0-9-]+:\d{1,5}\b` + // minio.internal:9000
	`|\blocalhost:\d{1,5}\b` +
	`|\bdial (?:tcp|udp|unix)\b|\blookup [^ ]+ on\b|\bno such host\b|\bconnection refused\b`)

// transport is a network-level failure: whatever its text, it is about the
// deployment, not the tenant's data.
func transport(err error) bool {
	var oe *net.OpError
	var de *net.DNSError
	var ue *url.Error
	var ae *net.AddrError
	return errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ue) || errors.As(err, &ae) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, context.DeadlineExceeded)
}
