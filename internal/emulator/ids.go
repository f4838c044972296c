package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// newUUID returns a random RFC 4122 version 4 UUID, the form Adobe uses for
// Flow Service IDs and etags.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newETag returns an etag the way Adobe prints them: a UUID inside embedded
// double quotes.
func newETag() string { return `"` + newUUID() + `"` }

// newHexID returns n random bytes as lowercase hex: mapping set IDs are 32
// hex characters, inlet IDs 64.
func newHexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newToken returns an opaque, unguessable access token.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "emu." + base64.RawURLEncoding.EncodeToString(b[:])
}
