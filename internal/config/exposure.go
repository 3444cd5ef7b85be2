package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// minOperatorPasswordLen is the shortest operator password accepted on an address
// beyond loopback.
const minOperatorPasswordLen = 16

// weakPasswords are development and guessable operator passwords, compared
// case-insensitively; none is accepted beyond loopback.
var weakPasswords = map[string]bool{
	"labelq-dev": true, "labelq-dev-change-me": true, "labelq": true, "admin": true, "password": true,
	"operator": true, "changeme": true, "change-me": true, "secret": true, "minioadmin": true,
	"letmein": true, "123456": true, "12345678": true, "qwerty": true, "root": true, "test": true,
}

// Loopback reports whether the listen address host:port accepts connections from
// this machine only: 127.0.0.0/8, ::1 or "localhost". An empty host (":8080") or
// 0.0.0.0 listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// exposureProblems refuses development credentials when LABELQ_HTTP_ADDR listens
// beyond loopback: a known or short operator password, or MinIO's default keys.
// On loopback (the default, and `make run`) they stay allowed.
func (c *Config) exposureProblems() []error {
	if Loopback(c.HTTPAddr) {
		return nil
	}
	var errs []error
	why := fmt.Sprintf("LABELQ_HTTP_ADDR %q listens beyond loopback", c.HTTPAddr)
	if p := c.OperatorPassword; p != "" && (weakPasswords[strings.ToLower(p)] || len(p) < minOperatorPasswordLen) {
		errs = append(errs, fmt.Errorf("LABELQ_OPERATOR_PASSWORD: %s, so it must not be a default or guessable password and must be at least %d characters: set LABELQ_OPERATOR_PASSWORD to a long random value (openssl rand -hex 16), or listen on 127.0.0.1", why, minOperatorPasswordLen))
	}
	if c.S3AccessKey == "minioadmin" || c.S3SecretKey == "minioadmin" {
		errs = append(errs, fmt.Errorf("LABELQ_S3_ACCESS_KEY, LABELQ_S3_SECRET_KEY: %s, so MinIO's default keys (minioadmin) are refused: set LABELQ_S3_ACCESS_KEY and LABELQ_S3_SECRET_KEY to a MinIO user's keys, or listen on 127.0.0.1", why))
	}
	return errs
}

// metricsExposureProblems holds LABELQ_METRICS_ADDR beyond loopback to the
// operator password rules of LABELQ_HTTP_ADDR: it serves /metrics behind the same
// credential. Nothing to add when LABELQ_HTTP_ADDR is exposed already (checked there).
func (c *Config) metricsExposureProblems() []error {
	if c.MetricsAddr == "" || Loopback(c.MetricsAddr) || !Loopback(c.HTTPAddr) {
		return nil
	}
	if p := c.OperatorPassword; p != "" && (weakPasswords[strings.ToLower(p)] || len(p) < minOperatorPasswordLen) {
		return []error{fmt.Errorf("LABELQ_OPERATOR_PASSWORD: LABELQ_METRICS_ADDR %q listens beyond loopback, so it must not be a default or guessable password and must be at least %d characters: set LABELQ_OPERATOR_PASSWORD to a long random value (openssl rand -hex 16), or listen on 127.0.0.1", c.MetricsAddr, minOperatorPasswordLen)}
	}
	return nil
}
