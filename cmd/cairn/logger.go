package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// logConfig is how the logger is built, from etcd's flags --logger,
// --log-outputs, --log-level, --log-format, --enable-log-rotation and
// --log-rotation-config-json.
type logConfig struct {
	// Logger must be "zap", etcd 3.7's only logger.
	Logger string
	// Outputs are "default" (stderr), "stderr", "stdout" or file paths;
	// empty means "default". "/dev/null" among them discards everything.
	Outputs []string
	// Level is debug, info, warn, error, panic or fatal.
	Level string
	// Format is "json" (or empty) or "console".
	Format string
	// EnableRotation rotates the one file output with lumberjack,
	// configured by RotationConfigJSON.
	EnableRotation     bool
	RotationConfigJSON string
}

// Log output names, as etcd's.
const (
	logOutputDefault = "default"
	logOutputStderr  = "stderr"
	logOutputStdout  = "stdout"
	logOutputJournal = "systemd/journal"
	logOutputDevNull = "/dev/null"
)

// errLogRotationInvalidLogOutput is etcd's refusal of rotation without
// exactly one file to rotate (the text names the flag as etcd's does).
var errLogRotationInvalidLogOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// logEncoderConfig is etcd's (logutil.DefaultZapLoggerConfig): the field
// names tools read ("level", "ts", "logger", "caller", "msg",
// "stacktrace") and its timestamp, microseconds in the local zone
// ("2026-12-02T07:29:44.654085Z" when the zone is UTC).
var logEncoderConfig = zapcore.EncoderConfig{
	TimeKey:       "ts",
	LevelKey:      "level",
	NameKey:       "logger",
	CallerKey:     "caller",
	MessageKey:    "msg",
	StacktraceKey: "stacktrace",
	LineEnding:    zapcore.DefaultLineEnding,
	EncodeLevel:   zapcore.LowercaseLevelEncoder,
	EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
		enc.AppendString(t.Format("2006-01-02T15:04:05.000000Z0700"))
	},
	EncodeDuration: zapcore.StringDurationEncoder,
	EncodeCaller:   zapcore.ShortCallerEncoder,
}

// newLogger builds the member's logger as etcd 3.7 builds its own from
// the same flags, and refuses what etcd refuses, with etcd's messages.
// Files are opened for appending and created if missing; they stay open
// for the process's life. Like etcd's, the logger samples (per second,
// after the first 100 lines with the same message, every 100th) and adds
// a stack trace to error lines.
//
// Differences from etcd: an unknown level is an error (etcd panics);
// "systemd/journal" is refused (etcd writes to journald's socket); as in
// etcd 3.7, "default" is stderr, also under systemd.
func newLogger(lc logConfig, stdout, stderr io.Writer) (*zap.Logger, error) {
	switch lc.Logger {
	case "zap":
	case "capnslog":
		return nil, errors.New("--logger=capnslog is removed in v3.5")
	default:
		return nil, fmt.Errorf("unknown logger option %q", lc.Logger)
	}
	outputs := lc.Outputs
	if len(outputs) == 0 {
		outputs = []string{logOutputDefault}
	}
	if len(outputs) > 1 && slices.Contains(outputs, logOutputDefault) {
		return nil, fmt.Errorf("multi logoutput for %q is not supported yet", logOutputDefault)
	}
	var rotation *lumberjack.Logger
	if lc.EnableRotation {
		var err error
		if rotation, err = parseLogRotation(outputs, lc.RotationConfigJSON); err != nil {
			return nil, err
		}
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error, panic, fatal", lc.Level)
	}
	var enc zapcore.Encoder
	switch lc.Format {
	case "json", "":
		enc = zapcore.NewJSONEncoder(logEncoderConfig)
	case "console":
		enc = zapcore.NewConsoleEncoder(logEncoderConfig)
	default:
		return nil, fmt.Errorf("unknown log format: %s, supported values json, console", lc.Format)
	}
	sink, err := openLogOutputs(outputs, rotation, stdout, stderr)
	if err != nil {
		return nil, err
	}
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, sink, lvl), time.Second, 100, 100)
	return zap.New(core, zap.ErrorOutput(sink), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)), nil
}

// openLogOutputs is where the lines go: each output once ("default" and
// "stderr" are one), or nowhere if "/dev/null" is among them, as etcd
// merges its output paths.
func openLogOutputs(outputs []string, rotation *lumberjack.Logger, stdout, stderr io.Writer) (zapcore.WriteSyncer, error) {
	if slices.Contains(outputs, logOutputDevNull) {
		return zapcore.AddSync(io.Discard), nil
	}
	var sinks []zapcore.WriteSyncer
	seen := map[string]bool{}
	for _, o := range outputs {
		if o == logOutputDefault {
			o = logOutputStderr
		}
		if seen[o] {
			continue
		}
		seen[o] = true
		switch {
		case o == logOutputStderr:
			sinks = append(sinks, zapcore.Lock(zapcore.AddSync(stderr)))
		case o == logOutputStdout:
			sinks = append(sinks, zapcore.Lock(zapcore.AddSync(stdout)))
		case o == logOutputJournal:
			return nil, fmt.Errorf("--log-outputs %s is not supported by cairn; use stderr (journald collects it under systemd) or a file", logOutputJournal)
		case rotation != nil:
			// parseLogRotation allowed one file: this one.
			rotation.Filename = o
			sinks = append(sinks, zapcore.AddSync(rotation))
		default:
			f, err := os.OpenFile(o, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
			if err != nil {
				return nil, fmt.Errorf("open sink %q: %w", o, err)
			}
			sinks = append(sinks, zapcore.Lock(f))
		}
	}
	return zapcore.NewMultiWriteSyncer(sinks...), nil
}

// parseLogRotation checks that there is exactly one file to rotate (other
// outputs may be stderr or stdout) and reads lumberjack's settings from
// the JSON, with etcd's errors.
func parseLogRotation(outputs []string, configJSON string) (*lumberjack.Logger, error) {
	files := 0
	for _, o := range outputs {
		switch o {
		case logOutputDefault, logOutputStderr, logOutputStdout:
		default:
			files++
		}
	}
	if (len(outputs) == 1 && files == 0) || files > 1 {
		return nil, errLogRotationInvalidLogOutput
	}
	// Read through a type of etcd's name, so that a type error names the
	// field as etcd's does ("logRotationConfig.Logger.maxsize").
	type logRotationConfig struct{ *lumberjack.Logger }
	l := logRotationConfig{&lumberjack.Logger{}}
	if err := json.Unmarshal([]byte(configJSON), &l); err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typeErr):
			return nil, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return nil, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	return l.Logger, nil
}
