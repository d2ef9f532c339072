// Command peers runs the servers and clients of the L7 real-server tests that need large
// modules (FerretDB, franz-go's kfake broker and client, an AMQP client, a MySQL driver). It is
// a module of its own, so that these dependencies stay out of the agent's go.mod; the test
// builds it once per run (internal/l7tracer, realservers_peers_linux_test.go).
//
//	peers ROLE ARG
//
// Servers print their address on the first line of stdout and serve until killed; clients
// run against ARG and exit (non-zero on an unexpected error). Traffic goes to loopback only.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// injectedDelay is the delay the servers add to the requests the tests mark slow (the same
// as the test's).
const injectedDelay = 60 * time.Millisecond

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: peers ROLE ARG")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
		os.Exit(1)
	}
}

func run(role, arg string) error {
	switch role {
	case "kafka-broker":
		return kafkaBroker(arg)
	case "kafka-client":
		return kafkaClient(arg)
	case "ferretdb":
		return ferretDB(arg)
	case "mongo-client":
		return mongoClient(arg)
	case "amqp-client":
		return amqpClient(arg)
	case "mysql-client":
		return mysqlClient(arg)
	case "mysql-query-client":
		return mysqlQueryClient(arg)
	}
	return fmt.Errorf("unknown role %q", role)
}

// kafkaBroker runs a one-broker kfake cluster with the topics "t", "slow" and "denied".
// Produce requests to "slow" wait injectedDelay; those to "denied" are answered with
// TOPIC_AUTHORIZATION_FAILED (29) in every partition. After every request it writes to the
// file statsPath "requests N failed M": what it answered, the test's expectation at the
// server.
func kafkaBroker(statsPath string) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t", "slow", "denied"))
	if err != nil {
		return err
	}
	defer c.Close()
	// Produce v13 names its topics by id only: the ids of the seeded topics, looked up now
	// (the control function runs in the cluster's loop, where TopicIDInfo would wait on itself).
	names := map[[16]byte]string{}
	for _, topic := range []string{"t", "slow", "denied"} {
		if i := c.TopicInfo(topic); i != nil {
			names[i.TopicID] = topic
		}
	}
	var mu sync.Mutex
	var requests, failed int
	save := func() {
		tmp := statsPath + ".tmp"
		_ = os.WriteFile(tmp, fmt.Appendf(nil, "requests %d failed %d\n", requests, failed), 0o644)
		_ = os.Rename(tmp, statsPath)
	}
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		requests++
		defer save()
		p, ok := req.(*kmsg.ProduceRequest)
		if !ok {
			return nil, nil, false
		}
		var topics []string
		for _, t := range p.Topics {
			if t.Topic == "" {
				t.Topic = names[t.TopicID]
			}
			topics = append(topics, t.Topic)
		}
		switch {
		case slicesContain(topics, "slow"):
			time.Sleep(injectedDelay)
		case slicesContain(topics, "denied"):
			failed++
			resp := p.ResponseKind().(*kmsg.ProduceResponse)
			for _, t := range p.Topics {
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic, rt.TopicID = t.Topic, t.TopicID
				for _, part := range t.Partitions {
					rp := kmsg.NewProduceResponseTopicPartition()
					rp.Partition, rp.ErrorCode = part.Partition, 29
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})
	fmt.Println(c.ListenAddrs()[0])
	select {}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// responseCounter counts the responses the client read (kgo's broker read hook).
type responseCounter struct{ n atomic.Int64 }

func (r *responseCounter) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		r.n.Add(1)
	}
}

// kafkaClient produces synchronously with franz-go's client: three records to "t", one to
// "slow", one to "denied" (which must fail), then prints "responses N": every response it
// read, its own requests and those it made by itself (ApiVersions, Metadata,
// InitProducerId), the test's expectation at the client.
func kafkaClient(addr string) error {
	var rc responseCounter
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.WithHooks(&rc), kgo.RecordRetries(0), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{"t", "t", "t", "slow"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			cl.Close()
			return fmt.Errorf("producing to %s: %w", topic, err)
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "denied", Value: []byte("v")}).FirstErr(); err == nil {
		cl.Close()
		return errors.New("producing to denied succeeded")
	}
	cl.Close()
	fmt.Printf("responses %d\n", rc.n.Load())
	return nil
}

// ferretDB runs FerretDB (SQLite backend, in dir) on a Unix socket and serves its MongoDB wire
// protocol on TCP 127.0.0.1 through a forwarder that delays the messages naming the
// collection "sleepy" by injectedDelay: the only way to make FerretDB slow.
func ferretDB(dir string) error {
	sock := filepath.Join(dir, "ferretdb.sock")
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		return err
	}
	go func() {
		if err := f.Run(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb:", err)
			os.Exit(1)
		}
	}()
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			_ = c.Close()
			break
		}
		if i == 200 {
			return errors.New("ferretdb never listened")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go forward(c, sock)
	}
}

func forward(c net.Conn, sock string) {
	defer c.Close()
	b, err := net.Dial("unix", sock)
	if err != nil {
		return
	}
	defer b.Close()
	// Not io.Copy(c, b): TCPConn.ReadFrom would splice the replies from the Unix socket, and the
	// L7 capture sees read/write-family syscalls only (splice moves no bytes through user space).
	go func() { _, _ = io.Copy(struct{ io.Writer }{c}, b) }()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if bytes.Contains(buf[:n], []byte("sleepy")) {
				time.Sleep(injectedDelay)
			}
			if _, err := b.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// BSON, as much as the client needs: documents of strings, int32s and sub-documents.
type elem struct {
	key string
	val any // string, int32, bson (a document), []bson (an array of documents)
}

type bson []elem

func (d bson) encode() []byte {
	var b []byte
	for _, e := range d {
		switch v := e.val.(type) {
		case string:
			b = append(b, 0x02)
			b = append(append(b, e.key...), 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)+1))
			b = append(append(b, v...), 0)
		case int32:
			b = append(b, 0x10)
			b = append(append(b, e.key...), 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case bson:
			b = append(b, 0x03)
			b = append(append(b, e.key...), 0)
			b = append(b, v.encode()...)
		case []bson:
			arr := make(bson, len(v))
			for i, x := range v {
				arr[i] = elem{fmt.Sprint(i), x}
			}
			b = append(b, 0x04)
			b = append(append(b, e.key...), 0)
			b = append(b, arr.encode()...)
		}
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(b)+5))
	return append(append(out, b...), 0)
}

// opMsg is an OP_MSG (2013) with one body section.
func opMsg(id uint32, doc bson) []byte {
	body := append([]byte{0, 0, 0, 0, 0}, doc.encode()...) // flagBits, section kind 0
	h := binary.LittleEndian.AppendUint32(nil, uint32(16+len(body)))
	h = binary.LittleEndian.AppendUint32(h, id)
	h = binary.LittleEndian.AppendUint32(h, 0)
	h = binary.LittleEndian.AppendUint32(h, 2013)
	return append(h, body...)
}

// mongoClient sends OP_MSG commands one at a time, each after the previous reply: hello, an
// insert, a find, a find on "sleepy" (delayed), an unknown command (ok: 0) and an insert of a
// duplicate key (writeErrors). The test expects 4 ok and 2 failed at both ends.
func mongoClient(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	doc := bson{{"_id", int32(1)}, {"x", "y"}}
	cmds := []bson{
		{{"hello", int32(1)}, {"$db", "admin"}},
		{{"insert", "c"}, {"documents", []bson{doc}}, {"$db", "test"}},
		{{"find", "c"}, {"filter", bson{}}, {"$db", "test"}},
		{{"find", "sleepy"}, {"filter", bson{}}, {"$db", "test"}},
		{{"nosuchcommand", int32(1)}, {"$db", "test"}},
		{{"insert", "c"}, {"documents", []bson{doc}}, {"$db", "test"}},
	}
	for i, cmd := range cmds {
		if _, err := c.Write(opMsg(uint32(i+1), cmd)); err != nil {
			return err
		}
		var h [16]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return err
		}
		n := binary.LittleEndian.Uint32(h[:])
		if n < 16 || n > 16<<20 {
			return fmt.Errorf("reply of %d bytes", n)
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-16)); err != nil {
			return err
		}
		if to := binary.LittleEndian.Uint32(h[8:]); to != uint32(i+1) {
			return fmt.Errorf("reply to %d, want %d", to, i+1)
		}
	}
	return nil
}

// amqpClient declares a queue, publishes three messages to it, consumes them and closes.
// The test expects three messages published and three delivered, at the client only.
func amqpClient(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclare("l7test", false, true, false, false, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte(fmt.Sprint("message ", i))}); err != nil {
			return err
		}
	}
	msgs, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		select {
		case <-msgs:
		case <-ctx.Done():
			return fmt.Errorf("%d of 3 messages delivered", i)
		}
	}
	return ch.Close()
}

// mysqlClient uses the binary protocol's prepared statements (COM_STMT_PREPARE, EXECUTE,
// CLOSE) on one connection: a statement prepared and executed twice, a slow one
// (SLEEP(0.06)) prepared and executed once, and one whose preparation fails. The test
// expects 5 ok (2 prepares, 3 executes; COM_STMT_CLOSE is not answered) and 1 failed.
func mysqlClient(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	stmt, err := db.PrepareContext(ctx, "SELECT ? + 1")
	if err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		var n int
		if err := stmt.QueryRowContext(ctx, i).Scan(&n); err != nil {
			return err
		}
	}
	_ = stmt.Close()
	slow, err := db.PrepareContext(ctx, "SELECT SLEEP(?)")
	if err != nil {
		return err
	}
	if _, err := slow.ExecContext(ctx, injectedDelay.Seconds()); err != nil {
		return err
	}
	_ = slow.Close()
	if _, err := db.PrepareContext(ctx, "SELECT * FROM no_such_table WHERE x = ?"); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		return fmt.Errorf("preparing a statement on a missing table: %v", err)
	}
	return nil
}

// mysqlQueryClient sends statements without arguments, which go-sql-driver/mysql sends as
// COM_QUERY (the text protocol), on one connection: SELECT 1, a slow one (SLEEP(0.06)), one
// on a missing table (an ERR packet), SELECT 2. The test expects 3 ok and 1 failed.
func mysqlQueryClient(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	for _, q := range []string{"SELECT 1", fmt.Sprintf("SELECT SLEEP(%g)", injectedDelay.Seconds()), "SELECT * FROM no_such_table", "SELECT 2"} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			if strings.Contains(q, "no_such_table") && strings.Contains(err.Error(), "no_such_table") {
				continue
			}
			return fmt.Errorf("%s: %w", q, err)
		}
		for rows.Next() {
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}
