package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logConfig is how the logger is built, from etcd's flags --logger,
// --log-outputs, --log-level, --log-format, --enable-log-rotation and
// --log-rotation-config-json.
type logConfig struct {
	Logger             string
	Outputs            []string
	Level              string
	Format             string
	EnableRotation     bool
	RotationConfigJSON string
}

// newLogger builds the member's logger. For now only zap JSON on stderr
// is built.
func newLogger(lc logConfig, stdout, stderr io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error, panic, fatal", lc.Level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(stderr), lvl)
	return zap.New(core, zap.AddCaller()), nil
}
