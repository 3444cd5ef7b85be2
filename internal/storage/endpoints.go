package storage

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Allowlist is the S3 endpoints tenants may point a storage at
// (LABELQ_STORAGE_ALLOWED_ENDPOINTS): exact host:port entries the operator chose,
// and *.domain:port wildcards. A tenant can type any endpoint; only these are ever
// contacted. Through a wildcard, an address that resolves to a loopback, private,
// link-local or unspecified IP is refused when the connection is made (so a DNS
// answer that changes after the check cannot reach inside the network either).
type Allowlist struct {
	exact    map[string]bool
	suffixes []string // ".domain:port", lower case
}

// ParseAllowlist reads LABELQ_STORAGE_ALLOWED_ENDPOINTS; an empty value allows
// only own, labelq's own S3 endpoint.
func ParseAllowlist(s, own string) (*Allowlist, error) {
	a := &Allowlist{exact: map[string]bool{}}
	if strings.TrimSpace(s) == "" {
		a.exact[strings.ToLower(own)] = true
		return a, nil
	}
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		host, port, err := net.SplitHostPort(e)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("LABELQ_STORAGE_ALLOWED_ENDPOINTS: %q is not host:port (or *.domain:port)", e)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("LABELQ_STORAGE_ALLOWED_ENDPOINTS: %q: a wildcard is *.domain:port", e)
			}
			a.suffixes = append(a.suffixes, "."+rest+":"+port)
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("LABELQ_STORAGE_ALLOWED_ENDPOINTS: %q: a wildcard is *.domain:port", e)
		}
		a.exact[e] = true
	}
	return a, nil
}

// ErrEndpointNotAllowed says a storage names an endpoint the operator does not allow.
type ErrEndpointNotAllowed struct{ Endpoint string }

func (e *ErrEndpointNotAllowed) Error() string {
	return fmt.Sprintf("endpoint %q is not one this labelq may reach; the operator allows endpoints with LABELQ_STORAGE_ALLOWED_ENDPOINTS", e.Endpoint)
}

// Check says whether endpoint (host:port) may be used, and whether it was allowed
// by a wildcard (so its addresses must be public).
func (a *Allowlist) Check(endpoint string) (wildcard bool, err error) {
	e := strings.ToLower(strings.TrimSpace(endpoint))
	host, port, splitErr := net.SplitHostPort(e)
	if splitErr != nil || host == "" || port == "" {
		return false, fmt.Errorf("endpoint %q is not host:port", endpoint)
	}
	if a != nil && a.exact[e] {
		return false, nil
	}
	if a != nil {
		for _, s := range a.suffixes {
			if strings.HasSuffix(e, s) && len(e) > len(s) {
				return true, nil
			}
		}
	}
	return false, &ErrEndpointNotAllowed{Endpoint: endpoint}
}

// publicOnly refuses, at connect time, an address no tenant should reach.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %q: not an IP address", address)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("refusing to connect to %s: a private, loopback or link-local address", ip)
	}
	return nil
}

// Credentials are a storage's S3 keys, as sealed in storages.credentials.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

// Hint is the access key id's first characters and an ellipsis: enough for a
// person to know which key an error is about, not enough to use it.
func (c Credentials) Hint() string {
	k := c.AccessKeyID
	if len(k) > 6 {
		k = k[:6]
	}
	return k + "…"
}

// Remote says how to reach a tenant's bucket.
type Remote struct {
	Endpoint string
	Bucket   string
	Region   string
	UseTLS   bool
	Creds    Credentials
}

// NewRemote builds a client for a tenant's bucket on an allowed endpoint; it does
// not contact the server. Redirects are not followed, and through a wildcard
// entry no private address is ever dialled.
func NewRemote(r Remote, allow *Allowlist) (*Store, error) {
	wildcard, err := allow.Check(r.Endpoint)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if wildcard {
		dialer.Control = publicOnly
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c, err := minio.New(r.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(r.Creds.AccessKeyID, r.Creds.SecretAccessKey, r.Creds.SessionToken),
		Secure:    r.UseTLS,
		Region:    r.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", r.Endpoint, err)
	}
	return &Store{Client: c, Bucket: r.Bucket}, nil
}
