package webrtc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// pionReceiveBuffer is what pion keeps of packets waiting for DTLS and SCTP
// on the receiving side before it drops them: maxBufferSize of pion/ice
// (agent_config.go) and of pion/webrtc's internal/mux (mux.go), constants
// in both, with two bytes of length per packet.
const pionReceiveBuffer = 1000 * 1000

// TestSendBudgetStaysUnderPionBuffer: however many streams write and
// however slowly the peer reads, what a connection has queued on its
// association (in flight included) stays under what the receiving pion
// holds before it drops packets, counting each packet's DTLS and SCTP
// overhead. Every loss halves SCTP's congestion window and several at
// once time it out to one packet, which on a long path costs seconds.
func TestSendBudgetStaysUnderPionBuffer(t *testing.T) {
	leakcheck.Check(t)
	const (
		streams   = 4
		perStream = 2 << 20
		// Packets of pion's 1200-byte MTU carry at least 1100 bytes of
		// data (DTLS record 37 bytes, SCTP header and chunk 28) plus the
		// two bytes pion's buffer spends on each.
		perPacket, dataPerPacket = 1200 + 2, 1100
	)
	// Each writer checks the budget before a message, so together they
	// may pass it by one message each; control messages (FIN) add a few
	// bytes.
	worst := sendHighWater + streams*maxMessageSize + 1<<10
	if packets := worst*perPacket/dataPerPacket + 1; packets > pionReceiveBuffer {
		t.Fatalf("the send budget allows %d bytes in flight, %d in packets, over pion's %d", worst, packets, pionReceiveBuffer)
	}

	c, s := pair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), perStream/16)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The reader is slower than the writers: 8 KiB per read, a pause of a
	// millisecond between reads.
	errs := make(chan error, 2*streams)
	var readers sync.WaitGroup
	readers.Add(streams)
	go func() {
		for range streams {
			st, err := s.AcceptStream()
			if err != nil {
				errs <- fmt.Errorf("accept: %w", err)
				readers.Done()
				continue
			}
			go func() {
				defer readers.Done()
				defer st.Close()
				st.SetReadDeadline(time.Now().Add(time.Minute))
				var got bytes.Buffer
				buf := make([]byte, 8<<10)
				for {
					n, err := st.Read(buf)
					got.Write(buf[:n])
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- fmt.Errorf("read: %w", err)
						return
					}
					time.Sleep(time.Millisecond) // a slow reader, not a wait for anything
				}
				if !bytes.Equal(got.Bytes(), payload) {
					errs <- fmt.Errorf("received %d bytes, not what was sent", got.Len())
				}
			}()
		}
	}()

	// Sample what the sender's association holds while the writers run.
	sctp := c.(*Conn).pc.SCTP()
	peak := make(chan int, 1)
	stop := make(chan struct{})
	go func() {
		most := 0
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-tick.C:
				most = max(most, sctp.BufferedAmount())
			}
		}
	}()

	var writers sync.WaitGroup
	for range streams {
		writers.Add(1)
		go func() {
			defer writers.Done()
			st, err := c.OpenStream(ctx)
			if err != nil {
				errs <- fmt.Errorf("open: %w", err)
				return
			}
			defer st.Close()
			st.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := st.Write(payload); err != nil {
				errs <- fmt.Errorf("write: %w", err)
				return
			}
			if err := st.CloseWrite(); err != nil {
				errs <- fmt.Errorf("close write: %w", err)
			}
		}()
	}
	writers.Wait()
	readers.Wait()
	close(stop)
	most := <-peak
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most > worst {
		t.Errorf("the association held %d bytes, over the budget's worst case %d", most, worst)
	}
	if most < sendHighWater/2 {
		t.Errorf("the association held at most %d bytes: the writers never reached the budget (%d), so the test shows nothing", most, sendHighWater)
	}
	t.Logf("peak queued on the association: %d bytes (budget %d, worst case %d)", most, sendHighWater, worst)
}
