package websocket

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

const goodRequest = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" +
	"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n"

func reader(s string) *bufio.Reader {
	return bufio.NewReader(&limitReader{r: strings.NewReader(s), n: maxHandshakeBytes})
}

// The RFC 6455 §1.3 example key and accept value.
func TestAcceptKey(t *testing.T) {
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatal(got)
	}
}

func TestReadUpgradeRequest(t *testing.T) {
	key, err := readUpgradeRequest(reader(goodRequest + "\x82\x00"))
	if err != nil || key != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Fatalf("good request: %q %v", key, err)
	}
	for name, tc := range map[string]struct {
		req    string
		status int // 0: not even HTTP
	}{
		"POST":        {strings.Replace(goodRequest, "GET", "POST", 1), 405},
		"HTTP/1.0":    {strings.Replace(goodRequest, "HTTP/1.1", "HTTP/1.0", 1), 400},
		"no upgrade":  {strings.Replace(goodRequest, "Upgrade: websocket\r\n", "", 1), 426},
		"no conn":     {strings.Replace(goodRequest, "keep-alive, Upgrade", "keep-alive", 1), 400},
		"version 8":   {strings.Replace(goodRequest, "Version: 13", "Version: 8", 1), 426},
		"short key":   {strings.Replace(goodRequest, "dGhlIHNhbXBsZSBub25jZQ==", "dGhl", 1), 400},
		"no key":      {strings.Replace(goodRequest, "Sec-WebSocket-Key", "X", 1), 400},
		"body":        {strings.Replace(goodRequest, "\r\n\r\n", "\r\nContent-Length: 3\r\n\r\nabc", 1), 400},
		"garbage":     {"\x16\x03\x01garbage\r\n\r\n", 0},
		"truncated":   {goodRequest[:50], 0},
		"huge header": {"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHandshakeBytes) + "\r\n\r\n", 0},
	} {
		_, err := readUpgradeRequest(reader(tc.req))
		var he *handshakeError
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case tc.status == 0 && errors.As(err, &he):
			t.Errorf("%s: %v", name, err)
		case tc.status != 0 && (!errors.As(err, &he) || he.status != tc.status):
			t.Errorf("%s: want status %d, got %v", name, tc.status, err)
		}
	}
	_, err = readUpgradeRequest(reader("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHandshakeBytes) + "\r\n\r\n"))
	if !errors.Is(err, errHandshakeTooLarge) {
		t.Errorf("huge header: %v", err)
	}
}

func TestReadUpgradeResponse(t *testing.T) {
	key := newKey()
	good := string(appendUpgradeResponse(nil, key))
	br := reader(good + "\x82\x01x")
	if err := readUpgradeResponse(br, key); err != nil {
		t.Fatal(err)
	}
	// Frame bytes after the response stay in the reader.
	if rest, _ := br.Peek(3); string(rest) != "\x82\x01x" {
		t.Fatalf("after the response: %q", rest)
	}
	for name, resp := range map[string]string{
		"wrong key":  string(appendUpgradeResponse(nil, newKey())),
		"200":        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"404":        string(appendErrorResponse(nil, 404)),
		"no upgrade": strings.Replace(good, "Upgrade: websocket\r\n", "", 1),
		"no conn":    strings.Replace(good, "Connection: Upgrade\r\n", "", 1),
		"extension":  strings.Replace(good, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1),
		"garbage":    "\x00\x00garbage",
	} {
		if err := readUpgradeResponse(reader(resp), key); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The request the client writes is one the server accepts, with the path
// and Host given.
func TestRequestRoundTrip(t *testing.T) {
	key := newKey()
	req := string(appendUpgradeRequest(nil, "[::1]:443", "/a/b", key))
	if !strings.HasPrefix(req, "GET /a/b HTTP/1.1\r\nHost: [::1]:443\r\n") {
		t.Fatalf("request %q", req)
	}
	got, err := readUpgradeRequest(reader(req))
	if err != nil || got != key {
		t.Fatalf("%q %v", got, err)
	}
}

func FuzzReadUpgradeRequest(f *testing.F) {
	f.Add(goodRequest)
	f.Add(string(appendUpgradeRequest(nil, "h:1", "/", newKey())))
	f.Add("GET / HTTP/1.1\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		br := reader(s)
		key, err := readUpgradeRequest(br)
		if err == nil && len(key) != 24 {
			t.Fatalf("accepted key %q", key)
		}
	})
}

func FuzzReadUpgradeResponse(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	f.Add(string(appendUpgradeResponse(nil, key)))
	f.Add(string(appendErrorResponse(nil, 426)))
	f.Add("HTTP/1.1 101 x\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		err := readUpgradeResponse(reader(s), key)
		if err == nil && !strings.Contains(s, acceptKey(key)) {
			t.Fatalf("accepted %q without the accept key", s)
		}
	})
}
