package controllers_test

import (
	"bytes"
	"os"
	"sync"

	"go.uber.org/zap/zapcore"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	os.Stderr.Write(nil)
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// zapDebug logs at debug level so the secret scan sees everything.
func zapDebug() zapcore.Level { return zapcore.DebugLevel }
