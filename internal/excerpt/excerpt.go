// Package excerpt turns text from an error answer (a body, a header, a field
// of an error document) into a short, printable, single-line excerpt fit for
// an error message or a log line, with credentials taken out.
package excerpt

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxBytes bounds an excerpt; longer text is cut at a rune boundary and
// marked with "…".
const MaxBytes = 512

// Redacted replaces a secret found in an excerpt.
const Redacted = "[redacted]"

var htmlTag = regexp.MustCompile(`(?s)<[^>]*>`)

// Body excerpts a whole answer body: invalid UTF-8 is replaced, markup is
// stripped so an HTML error page reads as its text, and every non-empty
// secret is redacted (servers sometimes echo what they were sent).
func Body(body []byte, secrets ...string) string {
	s := strings.ToValidUTF8(string(body), "?")
	s = Redact(s, secrets...)
	if strings.Contains(s, "<") {
		s = htmlTag.ReplaceAllString(s, " ")
	}
	return Truncate(Clean(s))
}

// Redact replaces every non-empty secret in s.
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Redacted)
		}
	}
	return s
}

// Clean drops control characters and collapses whitespace to single spaces.
func Clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// Truncate cuts s to MaxBytes without splitting a rune.
func Truncate(s string) string {
	if len(s) <= MaxBytes {
		return s
	}
	cut := MaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
