package main

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestOfficialClientReads: the official client reads through each mode,
// many requests at once on one connection, and is told Unimplemented for
// anything but Range. A measuring stick that answered wrongly would
// measure nothing.
func TestOfficialClientReads(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 256)
	for _, name := range []string{"inline", "writer", "workers"} {
		t.Run(name, func(t *testing.T) {
			m, _ := parseMode(name)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go newServer(m, map[string][]byte{"abc": value}).serve(l)
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, DialTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						resp, err := cli.Get(ctx, "abc", clientv3.WithSerializable())
						if err != nil {
							t.Error(err)
							return
						}
						if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, value) || resp.Count != 1 {
							t.Errorf("get abc: %v", resp)
						}
					}
				}()
			}
			wg.Wait()
			if resp, err := cli.Get(ctx, "other", clientv3.WithSerializable()); err != nil || len(resp.Kvs) != 0 {
				t.Fatalf("get other: %v, %v", resp, err)
			}
			if _, err := cli.Put(ctx, "abc", "x"); status.Code(err) != codes.Unimplemented {
				t.Fatalf("put: %v, want Unimplemented", err)
			}
		})
	}
}
