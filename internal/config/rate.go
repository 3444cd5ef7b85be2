package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseRate reads a rate as LABELQ_API_RATE_LIMIT takes it: "N/unit" with unit
// s, sec, second, m, min, minute, h or hour, or "0" (or "off") for no limit,
// which is n 0.
func ParseRate(s string) (n int, per time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return 0, 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	n, err = strconv.Atoi(strings.TrimSpace(num))
	if !ok || err != nil || n < 1 {
		return 0, 0, fmt.Errorf("%q: want a positive count per period such as 600/min, 20/s or 5000/h, or 0 for no limit", s)
	}
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		return 0, 0, fmt.Errorf("%q: the period %q is not s, min or h", s, unit)
	}
	return n, per, nil
}
