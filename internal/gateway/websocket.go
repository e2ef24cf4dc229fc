package gateway

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// websocketProxy serves the gateway's routes over a WebSocket too, as
// etcd's gateway does (etcd wraps it in tmc/grpc-websocket-proxy): a
// request that asks for the upgrade becomes one streaming POST whose
// body is the client's messages, one JSON request a message, and whose
// newline-delimited JSON responses go back one a message. This is how a
// browser can hold a watch or a lease keep-alive open. Other requests
// pass through.
//
// As etcd's, the HTTP status and headers of the inner response are not
// sent (an error arrives as its JSON body, a message like any other),
// and the token can come from the Sec-WebSocket-Protocol header
// ("Bearer, <token>", which a browser can set) or a cookie named
// "token", besides the Authorization header.
type websocketProxy struct {
	next   http.Handler
	logger *zap.Logger
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	// As etcd's: any origin (--cors governs the HTTP responses only).
	CheckOrigin: func(*http.Request) bool { return true },
}

func (p *websocketProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		p.next.ServeHTTP(w, r)
		return
	}
	var respHeader http.Header
	if strings.HasPrefix(r.Header.Get("Sec-WebSocket-Protocol"), "Bearer") {
		respHeader = http.Header{"Sec-WebSocket-Protocol": []string{"Bearer"}}
	}
	conn, err := upgrader.Upgrade(w, r, respHeader)
	if err != nil {
		// Upgrade has answered the client with the error.
		p.logger.Warn("error upgrading websocket", zap.Error(err))
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	reqBody, reqBodyW := io.Pipe()
	// The inner call is always a POST: the streaming routes are POSTs,
	// and a browser's upgrade request is a GET.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL.String(), reqBody)
	if err != nil {
		p.logger.Warn("error preparing websocket request", zap.Error(err))
		return
	}
	if proto := r.Header.Get("Sec-WebSocket-Protocol"); proto != "" {
		req.Header.Set("Authorization", bearerFromSubprotocol(proto))
	}
	for _, h := range []string{"Origin", "Referer"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if cookie, err := r.Cookie("token"); err == nil {
		req.Header.Set("Authorization", "Bearer "+cookie.Value)
	}
	respBody, respBodyW := io.Pipe()

	// Two goroutines, both waited for below: the call, and the reader of
	// the client's messages. Either ending cancels the other's context.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer cancel()
		p.next.ServeHTTP(&pipeResponseWriter{w: respBodyW, header: http.Header{}}, req)
		respBodyW.Close()
	}()
	go func() {
		defer wg.Done()
		defer cancel()
		defer reqBodyW.Close()
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && ctx.Err() == nil {
					p.logger.Debug("websocket read ended", zap.Error(err))
				}
				return
			}
			if _, err := reqBodyW.Write(append(msg, '\n')); err != nil {
				return
			}
		}
	}()
	lines := bufio.NewScanner(respBody)
	lines.Buffer(make([]byte, 0, 64*1024), math.MaxInt32)
	for lines.Scan() {
		if len(lines.Bytes()) == 0 {
			continue
		}
		if err := conn.WriteMessage(websocket.TextMessage, lines.Bytes()); err != nil {
			break
		}
	}
	// Unblock both goroutines: the call's writes, the reader's read.
	cancel()
	respBody.CloseWithError(context.Canceled)
	reqBodyW.CloseWithError(context.Canceled)
	conn.Close()
	wg.Wait()
}

// bearerFromSubprotocol turns "Bearer, <token>" (the subprotocol list a
// browser can send) into "Bearer <token>"; anything else into "".
func bearerFromSubprotocol(proto string) string {
	_, token, ok := strings.Cut(proto, "Bearer,")
	if !ok {
		return ""
	}
	return "Bearer " + strings.TrimSpace(token)
}

// pipeResponseWriter is the inner call's response: its body goes to the
// pipe, its status and headers nowhere. Flush is there because the
// gateway streams only to a writer that can flush.
type pipeResponseWriter struct {
	w      io.Writer
	header http.Header
}

func (w *pipeResponseWriter) Header() http.Header         { return w.header }
func (w *pipeResponseWriter) Write(b []byte) (int, error) { return w.w.Write(b) }
func (w *pipeResponseWriter) WriteHeader(int)             {}
func (w *pipeResponseWriter) Flush()                      {}
