package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/labelq/labelq/internal/schema"
)

var languageCode = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)
var window = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$`)

var weekdays = map[string]bool{"monday": true, "tuesday": true, "wednesday": true, "thursday": true, "friday": true, "saturday": true, "sunday": true}

func checkLanguages(v *Validation, field string, langs map[string]float64) {
	for k, p := range langs {
		v.Check(languageCode.MatchString(k), field+"."+k, "is not a language code such as en, zh or pt-BR")
		v.Check(p >= 0 && p <= 5, field+"."+k, "proficiency must be between 0 and 5")
	}
}

func checkAvailability(v *Validation, field string, av map[string]json.RawMessage) {
	for k, raw := range av {
		if k == "timezone" {
			var tz string
			if json.Unmarshal(raw, &tz) != nil {
				v.Add(field+".timezone", "must be a time zone name such as Europe/Paris")
				continue
			}
			if _, err := time.LoadLocation(tz); err != nil || tz == "" {
				v.Add(field+".timezone", "%q is not a known time zone (use names such as Europe/Paris or UTC)", tz)
			}
			continue
		}
		if !weekdays[k] {
			v.Add(field+"."+k, "is not a weekday (monday … sunday) or timezone")
			continue
		}
		var wins []string
		if json.Unmarshal(raw, &wins) != nil {
			v.Add(field+"."+k, `must be a list of windows such as ["09:00-12:00"]`)
			continue
		}
		for _, w := range wins {
			m := window.FindStringSubmatch(w)
			if m == nil {
				v.Add(field+"."+k, "%q is not a window such as 09:00-12:00", w)
				continue
			}
			if m[1]+m[2] >= m[3]+m[4] {
				v.Add(field+"."+k, "%q ends before it starts", w)
			}
		}
	}
}

func checkUnit(v *Validation, field string, p *float64) {
	if p != nil {
		v.Check(*p >= 0 && *p <= 1, field, "must be between 0 and 1")
	}
}

func checkName(v *Validation, field, name string, required bool) {
	if required && strings.TrimSpace(name) == "" {
		v.Add(field, "is required")
		return
	}
	v.Check(len(name) <= 200, field, "must be at most 200 characters")
	v.Check(!strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }), field, "must not contain control characters")
}

func normalizeSHA256(v *Validation, field string, s *string) *string {
	if s == nil {
		return nil
	}
	l := strings.ToLower(strings.TrimSpace(*s))
	if b, err := hex.DecodeString(l); err != nil || len(b) != 32 {
		v.Add(field, "must be 64 hexadecimal characters (a SHA-256)")
		return nil
	}
	return &l
}

func normalizeMIME(v *Validation, field string, s *string) *string {
	if s == nil {
		return nil
	}
	mt, _, err := mime.ParseMediaType(*s)
	if err != nil || !strings.Contains(mt, "/") {
		v.Add(field, "%q is not a media type such as image/png", *s)
		return nil
	}
	return &mt
}

// checkStorageKey keeps a registered key inside the caller's own namespace of the
// bucket, so one organization can never register (and later export) another's objects.
func checkStorageKey(v *Validation, field, key string, orgID int64) {
	prefix := fmt.Sprintf("orgs/%d/", orgID)
	switch {
	case key == "":
		v.Add(field, "is required")
	case len(key) > 1024:
		v.Add(field, "must be at most 1024 bytes")
	case !strings.HasPrefix(key, prefix):
		v.Add(field, "must start with %q: upload through POST /v1/files/{file_id}/upload-url, which hands out such keys", prefix)
	case strings.Contains(key, "..") || strings.Contains(key, "//") || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		v.Add(field, "must not contain '..', '//', backslashes or control characters")
	case hidesPathChars(key):
		v.Add(field, "must not contain percent-encoded '.', '/' or '\\' (such as %%2e, %%2f, %%5c, also encoded twice as %%252e), nor percent-encoded bytes that are not UTF-8: "+
			"a gateway or tool that decodes the key would read another path; use the key POST /v1/files/{file_id}/upload-url hands out")
	}
}

// hidesPathChars reports whether decoding key's percent-escapes, once or
// repeatedly (%252e is %2e is '.'), yields '.', '/', '\\' or a control character
// from an escape, or bytes that are not UTF-8 (an overlong '/' such as %c0%af).
// Other escapes (%20) are literal characters of the key, left alone.
func hidesPathChars(key string) bool {
	for s := key; strings.Contains(s, "%"); {
		var b strings.Builder
		changed := false
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				c := unhex(s[i+1])<<4 | unhex(s[i+2])
				if c == '.' || c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
					return true
				}
				b.WriteByte(c)
				i += 2
				changed = true
				continue
			}
			b.WriteByte(s[i])
		}
		if !changed {
			return false
		}
		s = b.String()
		if !utf8.ValidString(s) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// checkSchema refuses an annotation schema that is not a usable JSON Schema, with
// the compiler the pre-annotation worker uses (internal/schema): no loader, so a
// $ref to a file or URL is refused without anything being read, and bounded in
// size and depth.
func checkSchema(v *Validation, field string, raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	if _, err := schema.Compile(raw); err != nil {
		var se *schema.Error
		if errors.As(err, &se) {
			v.Add(field, "%s", se.Reason)
			return
		}
		v.Add(field, "is not a usable JSON Schema")
	}
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func checkCron(v *Validation, field, spec string) {
	if strings.HasPrefix(strings.TrimSpace(spec), "TZ=") || strings.HasPrefix(strings.TrimSpace(spec), "CRON_TZ=") {
		v.Add(field, "put the time zone in the timezone field, not in the spec")
		return
	}
	if _, err := cronParser.Parse(spec); err != nil {
		v.Add(field, "%q is not a cron spec such as \"0 2 * * *\" or \"@daily\": %v", spec, err)
	}
}

func checkTimezone(v *Validation, field, tz string) {
	if _, err := time.LoadLocation(tz); err != nil || tz == "" {
		v.Add(field, "%q is not a known time zone (use names such as Europe/Paris or UTC)", tz)
	}
}
