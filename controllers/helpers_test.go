package controllers_test

import "go.uber.org/zap/zapcore"

// zapDebug logs at debug level so the secret scan sees everything.
func zapDebug() zapcore.Level { return zapcore.DebugLevel }
