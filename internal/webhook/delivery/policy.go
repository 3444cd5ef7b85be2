package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy is which webhook URLs tenants may register and which addresses a delivery
// may reach (LABELQ_WEBHOOK_ALLOW_HTTP, LABELQ_WEBHOOK_ALLOWED_NETWORKS). URLs are
// https unless the host is on the http list; a loopback, private, link-local,
// multicast or unspecified address is refused unless it is in an allowed network.
// The address is checked when the connection is made, so a name that resolves to
// a public address when the endpoint is saved and to 127.0.0.1 at delivery (DNS
// rebinding) is refused there.
type Policy struct {
	httpHosts map[string]bool
	networks  []netip.Prefix
}

// ParsePolicy reads the two settings.
func ParsePolicy(httpHosts, networks string) (*Policy, error) {
	p := &Policy{httpHosts: map[string]bool{}}
	for _, h := range strings.Split(httpHosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		h = strings.Trim(h, "[]")
		if _, err := netip.ParseAddr(h); err != nil && strings.ContainsAny(h, "/:@ *") {
			return nil, fmt.Errorf("LABELQ_WEBHOOK_ALLOW_HTTP: %q is not a host name or IP address (no scheme, port or path)", h)
		}
		p.httpHosts[h] = true
	}
	for _, n := range strings.Split(networks, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("LABELQ_WEBHOOK_ALLOWED_NETWORKS: %q is not a CIDR such as 127.0.0.0/8", n)
		}
		p.networks = append(p.networks, pfx.Masked())
	}
	return p, nil
}

// URLError says why a webhook URL is refused, for the person who typed it.
type URLError struct {
	Reason string
	// Err is ErrAddressRefused when an address is the reason.
	Err error
}

func (e *URLError) Error() string { return e.Reason }
func (e *URLError) Unwrap() error { return e.Err }

// CheckURL says whether raw may be a webhook endpoint: absolute http(s) URL, https
// unless allowed, no user info, no fragment, and a host that is not (and does not
// resolve to) an address deliveries may not reach. Resolution failures are not
// refused (a receiver's DNS may not exist yet); the dial-time check still holds.
func (p *Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return &URLError{Reason: "url must be an absolute https:// URL"}
	}
	host := strings.ToLower(u.Hostname())
	switch u.Scheme {
	case "https":
	case "http":
		if !p.httpHosts[host] {
			return &URLError{Reason: fmt.Sprintf("url must be https (plain http is allowed only for the hosts the operator lists in LABELQ_WEBHOOK_ALLOW_HTTP; %q is not one)", host)}
		}
	default:
		return &URLError{Reason: "url must be an https:// URL"}
	}
	if u.User != nil {
		return &URLError{Reason: "url must not carry a user name or password; the signature authenticates labelq"}
	}
	if u.Fragment != "" {
		return &URLError{Reason: "url must not have a #fragment"}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(ip)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.checkAddr(a); err != nil {
			return &URLError{Reason: fmt.Sprintf("url host %q resolves to %s: %v", host, a.Unmap(), err), Err: ErrAddressRefused}
		}
	}
	return nil
}

// ErrAddressRefused is what a delivery to a refused address fails with.
var ErrAddressRefused = errors.New("address refused")

func (p *Policy) checkAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, n := range p.networks {
		if n.Contains(ip) {
			return nil
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		cgnat.Contains(ip) {
		return &URLError{Reason: fmt.Sprintf("%s is a private, loopback or link-local address, which webhooks may not reach (the operator allows networks with LABELQ_WEBHOOK_ALLOWED_NETWORKS)", ip), Err: ErrAddressRefused}
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// control refuses, at connect time, an address the policy does not allow: the
// address actually dialled, after DNS.
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %q: not an IP address: %w", address, ErrAddressRefused)
	}
	if err := p.checkAddr(ap.Addr()); err != nil {
		return fmt.Errorf("refusing to connect: %w", err)
	}
	return nil
}

// Client is the HTTP client deliveries use: every connection checked by the
// policy, no proxy, no redirect followed (a 3xx is the answer), the whole request
// bounded by timeout. tr (nil for a new one) may carry TLS settings and limits;
// its proxy and dialer are replaced.
func (p *Policy) Client(timeout time.Duration, tr *http.Transport) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second, Control: p.control}
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.Proxy = nil
	tr.DialContext = dialer.DialContext
	tr.DialTLSContext = nil
	if tr.MaxIdleConns == 0 {
		tr.MaxIdleConns = 256
	}
	if tr.MaxIdleConnsPerHost == 0 {
		tr.MaxIdleConnsPerHost = 64
	}
	if tr.IdleConnTimeout == 0 {
		tr.IdleConnTimeout = 90 * time.Second
	}
	if tr.TLSHandshakeTimeout == 0 {
		tr.TLSHandshakeTimeout = min(timeout, 10*time.Second)
	}
	tr.ForceAttemptHTTP2 = true
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
