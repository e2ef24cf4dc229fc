/*
Copyright 2021 The Kubernetes Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// This file is not part of Cairn's module (it is under testdata, which the
// go command ignores). scripts/k8s-storage.sh hands it to `go test -overlay`
// in place of k8s.io/apiserver/pkg/storage/etcd3/testserver/test_server.go
// (v0.37.2), so that Kubernetes' storage tests, unchanged, run against a
// server process instead of an etcd embedded in the test binary.
//
// NewTestConfig and RunEtcd keep their signatures and what the tests see:
// NewTestConfig still returns an *embed.Config (the tests set fields of it:
// WatchProgressNotifyInterval, QuotaBackendBytes, ClientTLSInfo, https
// client URLs), and RunEtcd still returns a recording kubernetes.Client. What
// changes is how the server is started: RunEtcd runs the binary
// $K8S_STORAGE_SERVER (cairn, or stock etcd for comparison) with the flags
// that say what the config says (and those of $K8S_STORAGE_SERVER_FLAGS),
// waits until it answers Status, and stops it (SIGTERM, then SIGKILL) when
// the test ends. A config field the tests set that this file cannot turn
// into a flag fails the test rather than being dropped silently.
//
// The server's log goes to a file in the test's temporary folder; its last
// lines are logged when the test failed. A server that exits before the test
// ends fails the test, as the embedded server's error does upstream.

package testserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

// serverEnv names the server binary RunEtcd runs; flagsEnv holds flags
// added to every server's command line (--max-request-bytes=4096, so that
// the lists of the tests stream in many chunks).
const (
	serverEnv = "K8S_STORAGE_SERVER"
	flagsEnv  = "K8S_STORAGE_SERVER_FLAGS"
)

// getAvailablePort returns a TCP port that is available for binding.
func getAvailablePorts(count int) ([]int, error) {
	ports := []int{}
	for i := 0; i < count; i++ {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return nil, fmt.Errorf("could not bind to a port: %v", err)
		}
		// It is possible but unlikely that someone else will bind this port before we get a chance to use it.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// NewTestConfig returns the configuration of a single-member server on
// free loopback ports, with its data directory in the test's temporary
// folder, as upstream's does (UnsafeNoFsync included).
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()

	cfg.UnsafeNoFsync = true

	ports, err := getAvailablePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", strconv.Itoa(ports[1]))}

	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	cfg.Dir = t.TempDir()
	os.Chmod(cfg.Dir, 0700)
	return cfg
}

var autoPortLock sync.Mutex

// RunEtcd starts the server binary $K8S_STORAGE_SERVER with the provided
// config (or NewTestConfig(t) if nil), and returns a client connected to
// it. The server is stopped when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()

	if cfg == nil {
		// if we have to autopick free ports, lock until we successfully start the server on the ports we chose
		autoPortLock.Lock()
		defer autoPortLock.Unlock()
		cfg = NewTestConfig(t)
	}

	binary := os.Getenv(serverEnv)
	if binary == "" {
		t.Fatalf("%s is not set: it names the server binary (cairn or etcd) the storage tests run against", serverEnv)
	}
	args, err := flagsOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, strings.Fields(os.Getenv(flagsEnv))...)
	logPath := filepath.Join(t.TempDir(), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("starting %s %s", binary, strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { // owned by the cleanup below, which waits for exited
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
			t.Errorf("%s exited before the test ended: %v\n%s", binary, waitErr, logTail(logPath))
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 30s of SIGTERM\n%s", binary, logTail(logPath))
		}
		if t.Failed() {
			t.Logf("the end of %s's log:\n%s", binary, logTail(logPath))
		}
	})

	tlsConfig, err := cfg.ClientTLSInfo.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for _, u := range cfg.AdvertiseClientUrls {
		endpoints = append(endpoints, u.String())
	}
	client, err := kubernetes.New(clientv3.Config{
		TLS:         tlsConfig,
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	// Ready: the server answers Status (upstream waits for ReadyNotify,
	// which is when it serves clients).
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.Status(ctx, endpoints[0])
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("%s %s exited before it served clients: %v\n%s", binary, strings.Join(args, " "), waitErr, logTail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server took too long to start: %v\n%s", err, logTail(logPath))
		}
		select {
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}

	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}

// flagsOf returns the command-line flags that configure a server as cfg
// does, or an error naming the fields it set that have no flag here.
func flagsOf(cfg *embed.Config) ([]string, error) {
	join := func(us []url.URL) string {
		s := make([]string, len(us))
		for i, u := range us {
			s[i] = u.String()
		}
		return strings.Join(s, ",")
	}
	args := []string{
		"--name=" + cfg.Name,
		"--data-dir=" + cfg.Dir,
		"--listen-client-urls=" + join(cfg.ListenClientUrls),
		"--advertise-client-urls=" + join(cfg.AdvertiseClientUrls),
		"--listen-peer-urls=" + join(cfg.ListenPeerUrls),
		"--initial-advertise-peer-urls=" + join(cfg.AdvertisePeerUrls),
		"--initial-cluster=" + cfg.InitialCluster,
	}
	tls := cfg.ClientTLSInfo
	if tls.CertFile != "" {
		args = append(args, "--cert-file="+tls.CertFile, "--key-file="+tls.KeyFile)
	}
	if tls.TrustedCAFile != "" {
		args = append(args, "--trusted-ca-file="+tls.TrustedCAFile)
	}
	if tls.ClientCertAuth {
		args = append(args, "--client-cert-auth")
	}
	tls.CertFile, tls.KeyFile, tls.TrustedCAFile, tls.ClientCertAuth = "", "", "", false
	if !reflect.DeepEqual(tls, transport.TLSInfo{}) {
		return nil, fmt.Errorf("ClientTLSInfo sets fields other than CertFile, KeyFile, TrustedCAFile and ClientCertAuth: %+v", cfg.ClientTLSInfo)
	}

	// Every other exported field that differs from embed.NewConfig()'s
	// becomes --<its json name>=<value>, if it is a plain value.
	handled := map[string]bool{
		"Name": true, "Dir": true, "ListenClientUrls": true, "AdvertiseClientUrls": true,
		"ListenPeerUrls": true, "AdvertisePeerUrls": true, "InitialCluster": true,
		"ClientTLSInfo": true, "ZapLoggerBuilder": true,
	}
	base := reflect.ValueOf(embed.NewConfig()).Elem()
	got := reflect.ValueOf(cfg).Elem()
	var unhandled []string
	for i := 0; i < got.NumField(); i++ {
		f := got.Type().Field(i)
		if !f.IsExported() || handled[f.Name] {
			continue
		}
		v, b := got.Field(i), base.Field(i)
		if f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Interface {
			if !v.IsNil() && f.Type.Kind() == reflect.Func {
				unhandled = append(unhandled, f.Name)
			}
			continue
		}
		if reflect.DeepEqual(v.Interface(), b.Interface()) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		var value string
		switch {
		case name == "" || name == "-":
		case f.Type == reflect.TypeOf(time.Duration(0)):
			value = v.Interface().(time.Duration).String()
		case f.Type.Kind() == reflect.Bool:
			value = strconv.FormatBool(v.Bool())
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
			value = strconv.FormatInt(v.Int(), 10)
		case f.Type.Kind() >= reflect.Uint && f.Type.Kind() <= reflect.Uint64:
			value = strconv.FormatUint(v.Uint(), 10)
		case f.Type.Kind() == reflect.String:
			value = v.String()
		}
		if value == "" {
			unhandled = append(unhandled, f.Name)
			continue
		}
		args = append(args, "--"+name+"="+value)
	}
	if len(unhandled) > 0 {
		return nil, fmt.Errorf("the test sets embed.Config fields the external-server shim cannot pass on: %s", strings.Join(unhandled, ", "))
	}
	return args, nil
}

// logTail returns the last lines of the server's log.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
