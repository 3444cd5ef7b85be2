package verify

import (
	"fmt"
	"strconv"
)

// formatBytes renders a byte count for people: "1 byte", "2,048 bytes",
// "52,428,800 bytes (50.0 MiB)". The exact count comes first because it is
// what someone compares with their local file.
func formatBytes(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	s := groupThousands(n) + " bytes"
	if n >= 1<<20 || n <= -(1<<20) {
		s += " (" + humanBytes(n) + ")"
	}
	return s
}

// formatCount is formatBytes without the unit word, for the second size in
// a sentence: "1,000 bytes but 2,048 were declared".
func formatCount(n int64) string {
	s := groupThousands(n)
	if n >= 1<<20 || n <= -(1<<20) {
		s += " (" + humanBytes(n) + ")"
	}
	return s
}

func groupThousands(n int64) string {
	neg := n < 0
	u := uint64(n)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	out := make([]byte, 0, len(digits)+len(digits)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return string(out)
}

func humanBytes(n int64) string {
	f := float64(n)
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for (f >= 1024 || f <= -1024) && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return groupThousands(n) + " bytes"
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// formatLimit renders a configured limit: "10 GiB" when it is a whole number
// of a binary unit (as limits usually are), the exact count otherwise.
func formatLimit(n int64) string {
	units := []string{"EiB", "PiB", "TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		size := int64(1) << (10 * (len(units) - i))
		if n > 0 && n%size == 0 {
			return fmt.Sprintf("%d %s", n/size, u)
		}
	}
	return groupThousands(n) + " bytes"
}
