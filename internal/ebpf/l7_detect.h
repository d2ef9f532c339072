// SPDX-License-Identifier: GPL-2.0

// Protocol detection: the C port of internal/l7/detect.go. Each detector reads only the bytes
// its Go reference documents (fixed offsets, loops bounded by constants); detect.go is the
// specification and internal/l7's kernel test runs both on the same fixtures. Included by
// l7.c only.

#define L7_DETECT_MAX 1024 // bytes gathered for detection: the largest raw capture

// What one detection attempt sees: the first bytes of one syscall (gathered from its iovecs).
struct l7_detect_input {
	__u8 data[L7_DETECT_MAX];
	__u32 len;   // bytes in data
	__u32 total; // bytes the syscall moved
	__u8 flow;   // 0 write family, 1 read family
	__u8 udp;
	__u8 dns_port;  // the socket's local or peer port is 53
	__u8 last_byte; // byte total-1 of the syscall, read by the caller when total > len
};

#define DB(i) (in->data[MASKED(i, L7_DETECT_MAX - 1)])

static __always_inline __u32 be16_at(struct l7_detect_input *in, __u32 i)
{
	return (__u32)DB(i) << 8 | DB(i + 1);
}

static __always_inline __u32 be32_at(struct l7_detect_input *in, __u32 i)
{
	return (__u32)DB(i) << 24 | (__u32)DB(i + 1) << 16 | (__u32)DB(i + 2) << 8 | DB(i + 3);
}

static __always_inline __u32 le32_at(struct l7_detect_input *in, __u32 i)
{
	return (__u32)DB(i + 3) << 24 | (__u32)DB(i + 2) << 16 | (__u32)DB(i + 1) << 8 | DB(i);
}

static __always_inline int is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

static __always_inline int is_alpha(__u8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// has_prefix compares data[at..] with the n bytes of s (n a constant: unrolled).
#define has_prefix(in, at, s, n)                                                                   \
	({                                                                                         \
		int _ok = (in)->len >= (at) + (n);                                                 \
		_Pragma("unroll") for (int _k = 0; _k < (n); _k++) if (_ok && DB((at) + _k) != (__u8)(s)[_k]) _ok = 0; \
		_ok;                                                                               \
	})

static const char h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// detect_http2_preface reads bytes 0..23: the preface, or at least its first line (14 bytes)
// and as much of the rest as the syscall moved.
static __always_inline int detect_http2_preface(struct l7_detect_input *in)
{
	if (in->len < 14)
		return 0;
	__u8 diff = 0;
	for (int k = 0; k < 24; k++)
		if (k < in->len)
			diff |= DB(k) ^ (__u8)h2_preface[k];
	return !diff;
}

#define HTTP_METHODS 9
static const char http_methods[HTTP_METHODS][8] = {
	"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
};
static const __u8 http_method_len[HTTP_METHODS] = {4, 5, 4, 7, 5, 8, 6, 8, 6};

// detect_http1_request reads bytes 0..8: a method, a space and the first byte of the target.
static __always_inline int detect_http1_request(struct l7_detect_input *in)
{
	__u32 n = in->len < 9 ? in->len : 9;
	for (int m = 0; m < HTTP_METHODS; m++) {
		__u32 l = http_method_len[m];
		if (n <= l)
			continue;
		int ok = 1;
		for (int k = 0; k < 8; k++)
			if (k < l && DB(k) != (__u8)http_methods[m][k])
				ok = 0;
		if (!ok)
			continue;
		__u8 t = DB(l);
		return t == '/' || t == '*' || is_alpha(t) || is_digit(t) || t == '[';
	}
	return 0;
}

// detect_http1_response reads bytes 0..12: "HTTP/1.x NNN".
static __always_inline int detect_http1_response(struct l7_detect_input *in)
{
	if (in->len < 13 || !has_prefix(in, 0, "HTTP/1.", 7) || DB(8) != ' ' || (DB(12) != ' ' && DB(12) != '\r'))
		return 0;
	if (!is_digit(DB(9)) || !is_digit(DB(10)) || !is_digit(DB(11)))
		return 0;
	return DB(9) >= '1' && DB(9) <= '5';
}

#define PG_PROTOCOL3 196608
#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104

// detect_postgres reads bytes 0..7 and, for a 'Q', the syscall's last byte.
static __always_inline int detect_postgres(struct l7_detect_input *in)
{
	if (in->len < 8)
		return 0;
	__u32 n = be32_at(in, 0), code = be32_at(in, 4);
	if (n == in->total && n >= 8 && n <= 10000 && (code == PG_PROTOCOL3 || code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST))
		return 1;
	__u32 l = be32_at(in, 1);
	switch (DB(0)) {
	case 'Q':
		if (l < 5 || l + 1 != in->total)
			return 0;
		if (in->total <= in->len)
			return DB(in->total - 1) == 0;
		return in->last_byte == 0;
	case 'P':
		return l >= 8 && l < in->total && DB(5) < 0x80;
	}
	return 0;
}

// detect_amqp reads bytes 0..7: the AMQP 0-9-1 protocol header.
static __always_inline int detect_amqp(struct l7_detect_input *in)
{
	return has_prefix(in, 0, "AMQP\x00\x00\x09\x01", 8);
}

// detect_nats_client reads bytes 0..8: "CONNECT {", or "PUB "/"HPUB " and a subject byte.
static __always_inline int detect_nats_client(struct l7_detect_input *in)
{
	if (has_prefix(in, 0, "CONNECT {", 9))
		return 1;
	if (in->len >= 5 && has_prefix(in, 0, "PUB ", 4) && DB(4) > ' ')
		return 1;
	if (in->len >= 6 && has_prefix(in, 0, "HPUB ", 5) && DB(5) > ' ')
		return 1;
	return 0;
}

// detect_nats_server reads bytes 0..5: "INFO {", or "MSG " and a subject byte.
static __always_inline int detect_nats_server(struct l7_detect_input *in)
{
	if (has_prefix(in, 0, "INFO {", 6))
		return 1;
	return in->len >= 5 && has_prefix(in, 0, "MSG ", 4) && DB(4) > ' ';
}

// l7_ch_string checks a ClickHouse string of at most 64 printable bytes at i (a length byte,
// then the bytes) and returns the index after it, or 0. A global function: the verifier checks
// it once, not once per outcome of the previous string.
__attribute__((noinline)) int l7_ch_string(struct l7_detect_input *in, __u32 i)
{
	if (!in || i >= in->len || i >= L7_DETECT_MAX)
		return 0;
	__u32 k = DB(i);
	if (k >= 0x80 || k > 64 || i + 1 + k > in->len)
		return 0;
	for (__u32 j = 0; j < 64; j++) {
		if (j >= k)
			break;
		__u8 c = DB(i + 1 + j);
		if (c < 0x20 || c > 0x7e)
			return 0;
	}
	return i + 1 + k;
}

// detect_clickhouse reads at most 66 bytes (a Hello's client name) or 260 (a Query's query id
// and client info).
static __always_inline int detect_clickhouse(struct l7_detect_input *in)
{
	__u32 start, n, i, j;
	if (in->len < 2)
		return 0;
	if (DB(0) == 0) { // Hello: the client name contains "clickhouse", case-folded
		i = l7_ch_string(in, 1);
		if (!i)
			return 0;
		start = 2;
		n = i - start;
		// Letters only in "clickhouse": c | 0x20 folds exactly the upper-case letters onto them.
		for (__u32 p = 0; p + 10 <= 64; p++) {
			if (p + 10 > n)
				break;
			__u8 diff = 0;
			for (int k = 0; k < 10; k++)
				diff |= (DB(start + p + k) | 0x20) ^ (__u8)"clickhouse"[k];
			if (!diff)
				return 1;
		}
		return 0;
	}
	if (DB(0) != 1) // Query: query id, query kind 1 or 2, initial user, initial query id, address
		return 0;
	i = l7_ch_string(in, 1);
	if (!i || i >= in->len || (DB(i) != 1 && DB(i) != 2))
		return 0;
	i = l7_ch_string(in, i + 1);
	if (!i)
		return 0;
	i = l7_ch_string(in, i);
	if (!i)
		return 0;
	j = l7_ch_string(in, i);
	if (!j)
		return 0;
	start = i + 1;
	n = j - start;
	for (__u32 k = 0; k < 64; k++) {
		if (k >= n)
			break;
		if (DB(start + k) == ':')
			return 1;
	}
	return 0;
}

#define MC_COMMANDS 22
static const char mc_commands[MC_COMMANDS][10] = {
	"get ", "gets ", "gat ", "gats ", "set ", "add ", "replace ", "append ", "prepend ", "cas ",
	"delete ", "incr ", "decr ", "touch ", "mg ", "ms ", "md ", "ma ", "mn\r\n", "version\r\n",
	"stats\r\n", "stats ",
};
static const __u8 mc_command_len[MC_COMMANDS] = {4, 5, 4, 5, 4, 4, 8, 7, 8, 4, 7, 5, 5, 6, 3, 3, 3, 3, 4, 9, 7, 6};

// detect_memcached reads bytes 0..9: a command word followed by a space (or CR LF), then a key
// byte. The first command whose word matches decides.
static __always_inline int detect_memcached(struct l7_detect_input *in)
{
	for (int m = 0; m < MC_COMMANDS; m++) {
		__u32 l = mc_command_len[m];
		if (in->len < l)
			continue;
		int ok = 1;
		for (int k = 0; k < 10; k++)
			if (k < l && DB(k) != (__u8)mc_commands[m][k])
				ok = 0;
		if (!ok)
			continue;
		if (mc_commands[m][l - 1] == '\n')
			return 1;
		return in->len > l && DB(l) > ' ' && DB(l) < 0x7f;
	}
	return 0;
}

// detect_redis reads at most 14 bytes: "*<1-3 digits>\r\n$<1-5 digits>\r\n" and the first byte
// of the command name, a letter.
static __always_inline int detect_redis(struct l7_detect_input *in)
{
	__u32 len = in->len, i = 1, n = 0;
	if (len < 8 || DB(0) != '*')
		return 0;
	for (int j = 0; j < 3; j++) {
		if (i < len && is_digit(DB(i))) {
			i++;
			n++;
		} else {
			break;
		}
	}
	if (n == 0 || i + 1 >= len || DB(i) != '\r' || DB(i + 1) != '\n')
		return 0;
	i += 2;
	if (i >= len || DB(i) != '$')
		return 0;
	i++;
	n = 0;
	for (int j = 0; j < 5; j++) {
		if (i < len && is_digit(DB(i))) {
			i++;
			n++;
		} else {
			break;
		}
	}
	if (n == 0 || i + 2 >= len || DB(i) != '\r' || DB(i + 1) != '\n')
		return 0;
	return is_alpha(DB(i + 2));
}

// detect_mysql_command reads bytes 0..4: a packet of sequence id 0 that fills the syscall and
// holds COM_QUERY, COM_STMT_PREPARE or COM_STMT_EXECUTE.
static __always_inline int detect_mysql_command(struct l7_detect_input *in)
{
	if (in->len < 5)
		return 0;
	__u32 n = DB(0) | (__u32)DB(1) << 8 | (__u32)DB(2) << 16;
	if (DB(3) != 0 || n + 4 != in->total || n < 1)
		return 0;
	__u8 c = DB(4);
	return c == 0x03 || c == 0x16 || c == 0x17;
}

// detect_mysql_greeting reads bytes 0..6: the server's initial handshake (protocol 10).
static __always_inline int detect_mysql_greeting(struct l7_detect_input *in)
{
	if (in->len < 7)
		return 0;
	__u32 n = DB(0) | (__u32)DB(1) << 8 | (__u32)DB(2) << 16;
	return DB(3) == 0 && n + 4 == in->total && DB(4) == 10 && is_digit(DB(5)) && DB(6) == '.';
}

// detect_mongo reads bytes 0..15: a header filling the syscall, responseTo 0, OP_MSG, OP_QUERY
// or OP_COMPRESSED.
static __always_inline int detect_mongo(struct l7_detect_input *in)
{
	if (in->len < 16)
		return 0;
	__u32 n = le32_at(in, 0), op = le32_at(in, 12);
	return n == in->total && n >= 21 && le32_at(in, 8) == 0 && (op == 2013 || op == 2004 || op == 2012);
}

// cql_frame_valid checks a CQL request frame header at i (version 3..5, flags, opcode, length).
static __always_inline int cql_frame_valid(struct l7_detect_input *in, __u32 i)
{
	__u8 v = DB(i);
	if (v & 0x80)
		return 0; // a response
	if (v < 3 || v > 5 || (DB(i + 1) & 0xe0))
		return 0;
	switch (DB(i + 4)) {
	case 0x01: case 0x05: case 0x07: case 0x09: case 0x0A: case 0x0B: case 0x0D: case 0x0F:
		break;
	default:
		return 0;
	}
	return be32_at(in, i + 5) <= (256 << 20);
}

// crc24 is the CRC of CQL v5 segment headers (polynomial 0x1974F0B, initial 0x875060) over
// the 3 low bytes of v, least significant first.
static __always_inline __u32 crc24(__u32 v)
{
	__u32 crc = 0x875060;
	for (int n = 0; n < 3; n++) {
		crc ^= (v & 0xff) << 16;
		v >>= 8;
		for (int i = 0; i < 8; i++) {
			crc <<= 1;
			if (crc & 0x1000000)
				crc ^= 0x1974F0B;
		}
	}
	return crc & 0xffffff;
}

// detect_cassandra reads bytes 0..8 (v3/v4 frame) or 0..14 (v5 segment header and envelope).
static __always_inline int detect_cassandra(struct l7_detect_input *in)
{
	if (in->len < 9)
		return 0;
	if ((DB(0) == 3 || DB(0) == 4) && cql_frame_valid(in, 0))
		return 9 + be32_at(in, 5) <= in->total;
	__u32 v = DB(0) | (__u32)DB(1) << 8 | (__u32)DB(2) << 16;
	__u32 crc = DB(3) | (__u32)DB(4) << 8 | (__u32)DB(5) << 16;
	if (crc24(v) != crc || in->len < 6 + 9)
		return 0;
	__u32 n = v & 0x1ffff;
	return DB(6) == 5 && cql_frame_valid(in, 6) && 6 + n + 4 <= in->total;
}

// detect_kafka reads bytes 0..13 and a client id of at most 64 bytes.
static __always_inline int detect_kafka(struct l7_detect_input *in)
{
	if (in->len < 14)
		return 0;
	__u32 n = be32_at(in, 0);
	if (n + 4 != in->total || n < 10)
		return 0;
	__s16 key = (__s16)be16_at(in, 4), ver = (__s16)be16_at(in, 6);
	__s32 corr = (__s32)be32_at(in, 8);
	if (key < 0 || key > 100 || ver < 0 || ver > 30 || corr < 0)
		return 0;
	__s16 l = (__s16)be16_at(in, 12);
	if (l == -1)
		return key == 18; // ApiVersions
	if (l < 1 || l > 64 || in->len < 14 + (__u32)l)
		return 0;
	for (int j = 0; j < 64; j++) {
		if (j >= l)
			break;
		__u8 c = DB(14 + j);
		if (c < 0x20 || c > 0x7e)
			return 0;
	}
	return 1;
}

static __always_inline int zk_known_op(__s32 t)
{
	return (t >= 1 && t <= 9) || (t >= 11 && t <= 22) || (t >= 100 && t <= 106) || t == -11;
}

// detect_zookeeper reads bytes 0..16: a ConnectRequest, a ping, or a request with a path.
static __always_inline int detect_zookeeper(struct l7_detect_input *in)
{
	if (in->len < 12)
		return 0;
	__u32 n = be32_at(in, 0);
	if (n + 4 != in->total)
		return 0;
	if ((n == 44 || n == 45) && be32_at(in, 4) == 0)
		return 1;
	__u32 xid = be32_at(in, 4);
	__s32 op = (__s32)be32_at(in, 8);
	if (xid == 0xfffffffe && op == 11 && n == 8)
		return 1;
	if (in->len < 17 || !zk_known_op(op) || (__s32)xid < 0)
		return 0;
	__u32 pl = be32_at(in, 12);
	return pl >= 1 && pl <= 1024 && DB(16) == '/';
}

// detect_dns_query reads bytes 0..12 (UDP) or 0..14 (TCP, after the 2-byte length): a standard
// query with one question and the question's first label length.
static __always_inline int detect_dns_query(struct l7_detect_input *in, int tcp)
{
	__u32 o = 0;
	if (tcp) {
		if (in->len < 2 || be16_at(in, 0) + 2 != in->total)
			return 0;
		o = 2;
	}
	if (in->len - o <= 12)
		return 0;
	__u32 flags = be16_at(in, o + 2);
	if ((flags & 0x8000) || (flags & 0x7800) || be16_at(in, o + 4) != 1 || be16_at(in, o + 6) != 0 || be16_at(in, o + 8) != 0)
		return 0;
	return DB(o + 12) <= 63;
}

#define L7_ROLE_SERVER 1

// l7_try returns protocol | role << 8 when protocol p's request (or server greeting) detector
// matches, 0 otherwise.
static __always_inline int l7_try(struct l7_detect_input *in, __u32 p, int request, int response)
{
	if (!(protocols & (1u << p)))
		return 0;
	if (request)
		return p | (in->flow ? L7_ROLE_SERVER : 0) << 8; // a request read: the server
	if (response)
		return p | (in->flow ? 0 : L7_ROLE_SERVER) << 8; // a greeting read: the client
	return 0;
}

// l7_detect runs the detectors in internal/l7's DetectionOrder and returns protocol | role << 8,
// or 0. A global function: the verifier checks it once for every caller.
__attribute__((noinline)) int l7_detect(struct l7_detect_input *in)
{
	int r;
	if (!in || in->len > L7_DETECT_MAX)
		return 0;
	if (in->dns_port && (r = l7_try(in, L7_PROTO_DNS, detect_dns_query(in, !in->udp), 0)))
		return r;
	if (in->udp)
		return 0;
	if ((r = l7_try(in, L7_PROTO_HTTP2, detect_http2_preface(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_HTTP, detect_http1_request(in), detect_http1_response(in))))
		return r;
	if ((r = l7_try(in, L7_PROTO_POSTGRES, detect_postgres(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_RABBITMQ, detect_amqp(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_NATS, detect_nats_client(in), detect_nats_server(in))))
		return r;
	if ((r = l7_try(in, L7_PROTO_CLICKHOUSE, detect_clickhouse(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_MEMCACHED, detect_memcached(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_REDIS, detect_redis(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_MYSQL, detect_mysql_command(in), detect_mysql_greeting(in))))
		return r;
	if ((r = l7_try(in, L7_PROTO_MONGO, detect_mongo(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_CASSANDRA, detect_cassandra(in), 0)))
		return r;
	if ((r = l7_try(in, L7_PROTO_KAFKA, detect_kafka(in), 0)))
		return r;
	return l7_try(in, L7_PROTO_ZOOKEEPER, detect_zookeeper(in), 0);
}
