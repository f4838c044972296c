package excerpt

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		secrets []string
		want    string
	}{
		{"empty", "", nil, ""},
		{"json kept as is", `{"error":"x"}`, nil, `{"error":"x"}`},
		{"HTML page reads as its text",
			"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>",
			nil, "502 Bad Gateway 502 Bad Gateway"},
		{"control characters dropped", "a\x00b\x7fc\td\r\ne", nil, "abc d e"},
		{"invalid UTF-8 replaced", "\xff\xfe binary", nil, "? binary"},
		{"secrets redacted", "secret s3cr3t and token eyJ-abc", []string{"s3cr3t", "", "eyJ-abc"}, "secret [redacted] and token [redacted]"},
		{"secret inside markup redacted", "<p>s3cr3t</p>", []string{"s3cr3t"}, "[redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Body([]byte(tc.body), tc.secrets...); got != tc.want {
				t.Errorf("Body(%q) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{strings.Repeat("a", 2*MaxBytes), strings.Repeat("é", MaxBytes)} {
		got := Truncate(s)
		if len(got) > MaxBytes+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("Truncate gave %d bytes (valid UTF-8: %v)", len(got), utf8.ValidString(got))
		}
	}
	if short := "short"; Truncate(short) != short {
		t.Errorf("Truncate changed a short string")
	}
}
