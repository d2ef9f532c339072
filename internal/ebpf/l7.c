// SPDX-License-Identifier: GPL-2.0
//go:build ignore

// The L7 capture: one record (struct l7_segment) per read- or write-family syscall on a
// connection whose application protocol the kernel detected, with a bounded prefix of the bytes
// moved (or, for HTTP/2, a digest of the frames that start in them) and the connection's byte
// offset in that direction. User space (internal/l7) pairs requests with responses; the
// contract is internal/l7/CONTRACT.md. A separate object from codexray.c, loaded only when
// ebpf.l7.enabled: with L7 off nothing here runs. It shares the TCP tracer's seeded map, so
// connections open before the agent started report the id the tracer knows them by.
//
// The programs run on the sock_send_length and sock_recv_length tracepoints (no kprobes), which
// fire inside every socket send and receive with the socket and the bytes moved: nothing runs
// for the node's other syscalls, and the socket comes without walking the fd table. The
// syscall that moved the bytes (its number and arguments: fd, buffer, iovecs, msghdr) is read
// from the registers the task saved at syscall entry (bpf_task_pt_regs), which a syscall leaves
// as the caller set them. bpf_loop (Linux 5.17) bounds the per-frame loops.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000
#define PF_IO_WORKER 0x00000010
#define PF_KTHREAD 0x00200000
#define S_IFMT 00170000
#define S_IFSOCK 0140000

// Protocols: values of internal/l7's Protocol.
#define L7_PROTO_HTTP 1
#define L7_PROTO_HTTP2 2
#define L7_PROTO_POSTGRES 3
#define L7_PROTO_MYSQL 4
#define L7_PROTO_REDIS 5
#define L7_PROTO_MEMCACHED 6
#define L7_PROTO_MONGO 7
#define L7_PROTO_KAFKA 8
#define L7_PROTO_CASSANDRA 9
#define L7_PROTO_DNS 10
#define L7_PROTO_CLICKHOUSE 11
#define L7_PROTO_ZOOKEEPER 12
#define L7_PROTO_RABBITMQ 13
#define L7_PROTO_NATS 14
#define L7_PROTO_MAX 14
#define L7_PROTO_NONE 0xff // no protocol found within L7_DETECT_ATTEMPTS syscalls

// Segment flags: values of internal/l7's Flag*.
#define L7_SEG_RECEIVED 1
#define L7_SEG_SERVER 2
#define L7_SEG_DIGEST 4
#define L7_SEG_NEW 8
#define L7_SEG_UDP 16
#define L7_SEG_TRUNCATED 32
#define L7_SEG_CLOSED 64

#define L7_DETECT_ATTEMPTS 8
#define L7_MAX_IOV 8      // iovecs gathered per message
#define L7_H2_MAX_FRAMES 32
#define L7_H2_BLOCK_CAPTURE 2048
#define L7_DIGEST_BUDGET 8192 // digest bytes per syscall
#define L7_PAYLOAD_AREA 20480 // ≥ 16383 (offset mask) + 4095 (length mask) + 1
#define PMASK 0x3fff
#define LMASK 0xfff

// MASKED(v, m) is v & m in a form the compiler cannot drop when it already knows v ≤ m: the
// verifier needs the AND on the very register it checks.
#define MASKED(v, m)                                                                               \
	({                                                                                         \
		__u64 _v = (v);                                                                    \
		asm volatile("" : "+r"(_v));                                                       \
		_v & (m);                                                                          \
	})

// Set by the loader (internal/ebpf/l7probe.go).
const volatile __u32 protocols = 0xffffffff; // bit p: protocol p is detected
const volatile __u32 suppress_after = 4;     // internal/l7's SuppressAfter
const volatile __u32 suppress_bytes = 16384; // internal/l7's SuppressBytes
const volatile __u64 wakeup_bytes = 0;       // wake the reader once this much is pending

#include "l7_detect.h"

// One record of the l7_segments ring buffer (CONTRACT.md §2); the payload follows it.
struct l7_segment {
	__u64 timestamp_ns;
	__u64 sock;
	__u64 cgroup_id;
	__u64 offset;
	__u32 pid;
	__u32 fd;
	__u32 length;
	__u16 captured;
	__u8 protocol;
	__u8 flags;
};

const struct l7_segment *unused_l7_segment __attribute__((unused));

// Syscall kinds.
#define K_READ 1
#define K_READV 2
#define K_RECVFROM 3
#define K_RECVMSG 4
#define K_RECVMMSG 5
#define K_WRITE 6
#define K_WRITEV 7
#define K_SENDTO 8
#define K_SENDMSG 9
#define K_SENDMMSG 10
#define K_RECEIVED(k) ((k) <= K_RECVMMSG)

// The arguments of a read- or write-family syscall on a socket worth looking at.
struct l7_args {
	__u64 sk;
	__u64 buf;   // buffer, iovec array, msghdr or mmsghdr array
	__u32 fd;
	__u32 count; // read/recvfrom: the buffer's size; readv/writev: iovcnt
	__u8 kind;
	__u8 udp;
	__u8 dns;    // UDP: port 53 seen
	__u8 _pad;
	__u32 ino;   // UDP: the socket's inode number (new_socket)
};

// HTTP/2 frame digest state of one flow (internal/l7's HTTP2Digester).
struct l7_h2 {
	__u64 next;        // stream offset of the next frame header
	__u32 cont_left;   // payload bytes of a captured frame still to come
	__u16 cont_capture;
	__u8 hdr_len;      // bytes of a frame header cut by the last syscall's end
	__u8 synced;
	__u8 hdr[8];
	__u8 preface;      // the next syscall starts with the client preface
	__u8 _pad[7];
};

struct l7_flow {
	__u64 offset; // bytes moved in this direction since the state was created
	struct l7_h2 h2;
	__u32 run;       // consecutive segments of this flow since the other moved (suppression)
	__u32 run_bytes; // and their bytes
};

// Per-connection state, by socket address.
struct l7_conn {
	__u64 id; // the connection id segments carry: the socket address, or the tracer's seeded id
	struct l7_flow flow[2];
	__u8 protocol; // 0 while detecting, L7_PROTO_NONE once given up
	__u8 flags;    // L7_SEG_SERVER, L7_SEG_UDP
	__u8 attempts;
	__u8 fresh;    // L7_SEG_NEW still to be sent
	__u32 ino;     // UDP: the inode number of the socket the state was made for (sock_event)
};

// The bytes of the syscall (or of one message of sendmmsg/recvmmsg) as a list of user buffers.
struct l7_src {
	__u64 base[L7_MAX_IOV];
	__u32 len[L7_MAX_IOV];
	__u32 n;
	__u32 bytes; // bytes of the message the buffers hold (≤ bytes moved)
};

// struct iovec and struct user_msghdr as user space lays them out (64-bit), without pointer
// types (bpf2go generates Go types for map values).
struct l7_iovec {
	__u64 base;
	__u64 len;
};

struct l7_msghdr {
	__u64 name;
	__u32 namelen;
	__u32 _pad;
	__u64 iov;
	__u64 iovlen;
	__u64 control;
	__u64 controllen;
	__u32 flags;
	__u32 _pad2;
};

// Per-CPU working memory: the record being built (header and payload contiguous, so one
// bpf_ringbuf_output sends it) and the message's buffers. Detection reads the payload area.
struct l7_scratch {
	struct l7_segment seg;
	union {
		struct l7_detect_input det;
		__u8 payload[L7_PAYLOAD_AREA];
	};
	struct l7_src src;
	struct l7_iovec iov[L7_MAX_IOV]; // the message's iovecs as read from user memory
	struct l7_conn conn;             // a new connection's state before it goes into l7_conns
	struct l7_msghdr msg;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // struct sock *
	__type(value, struct l7_conn);
} l7_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_scratch);
} l7_scratch SEC(".maps");

// Where a socket's last sendmmsg or recvmmsg message was in its vector (mmsg_index).
struct l7_mmsg_hint {
	__u64 vec;
	__u64 offset[2]; // the socket's flow offsets after that message
	__u32 next;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); // struct sock *
	__type(value, struct l7_mmsg_hint);
} l7_mmsg_hints SEC(".maps");

// Size is set by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} l7_segments SEC(".maps");

// Counters (self-metrics), per CPU; internal/ebpf/l7probe.go names the slots.
#define C_LOST 0       // records the full ring buffer refused
#define C_SUPPRESSED 1 // segments of bulk transfers not forwarded (CONTRACT.md §4)
#define C_TRUNCATED 2  // HTTP/2 digests that could not describe every frame
#define C_DETECTED 3   // connections whose protocol was detected
#define C_GIVEN_UP 4   // connections with no protocol found within L7_DETECT_ATTEMPTS syscalls
// slot 5 is unused: user space counts the records it reads
#define C_SEEDED 6     // detected connections known to the TCP tracer by a seeded id
#define C_CLOSED 7     // close records written
#define C_COUNT 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} l7_counters SEC(".maps");

// The TCP tracer's map of connections open before the agent started (codexray.c): the loader
// replaces this definition by the tracer's map. Its key must stay identical to codexray.c's
// struct seeded_key (a test compares the two generated types).
struct seeded_key {
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

const struct seeded_key *unused_seeded_key __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct seeded_key);
	__type(value, __u64);
} seeded SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&l7_counters, &slot);
	if (v)
		*v += 1; // per-CPU slot: no atomic needed
}

// bpf_rdonly_cast (Linux 6.2) turns a kernel pointer into one the verifier lets the program
// read directly (a load instead of a helper call); without it fd_sock reads with helpers.
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

// fd_sock_ino returns the socket behind fd of the current task, or 0 for any other file, and
// the low 32 bits of the socket's inode number in *ino. It runs
// for every read and write of every process, so it reads through BTF pointers where it can.
static __always_inline struct sock *fd_sock_ino(__u32 fd, __u32 *ino)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if (fd >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	if (bpf_rdonly_cast) {
		struct file *ff = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
		if ((ff->f_inode->i_mode & S_IFMT) != S_IFSOCK)
			return 0;
		*ino = ff->f_inode->i_ino;
		struct socket *sock = bpf_rdonly_cast(ff->private_data, bpf_core_type_id_kernel(struct socket));
		return sock->sk;
	}
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	*ino = BPF_CORE_READ(f, f_inode, i_ino);
	struct socket *sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

static __always_inline __u16 sockaddr_port(__u64 addr)
{
	struct {
		__u16 family;
		__u16 port;
	} sa = {};
	if (!addr || bpf_probe_read_user(&sa, sizeof(sa), (void *)addr))
		return 0;
	if (sa.family != AF_INET && sa.family != AF_INET6)
		return 0;
	return bpf_ntohs(sa.port);
}

static __always_inline int dns_ports(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_num) == 53 || bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) == 53;
}

// Where a send names its destination: nowhere (a connected socket), a sockaddr (sendto) or the
// msg_name of a msghdr (sendmsg, a message of sendmmsg). Read only for UDP sockets.
#define DEST_NONE 0
#define DEST_SOCKADDR 1
#define DEST_MSGHDR 2

// msghdr_name reads msg_name of a user msghdr (sendmsg's destination).
static __always_inline __u64 msghdr_name(__u64 msg)
{
	void *name = 0;
	if (msg)
		bpf_probe_read_user(&name, sizeof(name), &((struct user_msghdr *)msg)->msg_name);
	return (__u64)name;
}

// new_socket decides whether a socket without L7 state gets some: a TCP socket, or a UDP socket
// talking DNS (bound or connected to port 53, or sending to it). Only when the syscall's fd
// names the socket: a kernel socket moving bytes inside a process's syscall (a network
// filesystem's, in a write to a file) must not be taken for that syscall's buffer. It sets
// a->udp and a->dns; on a TCP socket that fails the fd check it returns -1 (never worth
// looking at again).
static __always_inline int new_socket(struct l7_args *a, struct sock *sk, __u64 dest, int dest_kind)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto == IPPROTO_UDP) {
		if (!(protocols & (1u << L7_PROTO_DNS)))
			return 0;
		// DNS only, on a socket bound or connected to port 53, or sending to it.
		if (dest_kind == DEST_MSGHDR)
			dest = msghdr_name(dest);
		if (!dns_ports(sk) && (dest_kind == DEST_NONE || sockaddr_port(dest) != 53))
			return 0;
		if (fd_sock_ino(a->fd, &a->ino) != sk)
			return 0;
		a->udp = 1;
		a->dns = 1;
		return 1;
	}
	if (proto != IPPROTO_TCP)
		return 0;
	return fd_sock_ino(a->fd, &a->ino) == sk ? 1 : -1;
}

// Syscall numbers and argument registers per architecture (bpf2go sets __TARGET_ARCH_*); regs
// is bpf_task_pt_regs' pointer, read with plain loads. The flavoured pt_regs struct is relocated
// against the running kernel's (CO-RE). A 32-bit task's socket syscalls have numbers of another
// table, none of which is one of these at a socket send or receive (ia32 read is 3, arm32 read
// is 3, x32 numbers carry bit 30): their bytes are counted, not captured.
#if defined(__TARGET_ARCH_arm64)
struct pt_regs___arm64 {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));
#define SYS_READ 63
#define SYS_WRITE 64
#define SYS_READV 65
#define SYS_WRITEV 66
#define SYS_SENDTO 206
#define SYS_RECVFROM 207
#define SYS_SENDMSG 211
#define SYS_RECVMSG 212
#define SYS_RECVMMSG 243
#define SYS_SENDMMSG 269
static __always_inline long syscall_nr(struct pt_regs *regs)
{
	return ((struct pt_regs___arm64 *)regs)->syscallno;
}
static __always_inline void syscall_args(struct pt_regs *regs, __u64 arg[5])
{
	struct pt_regs___arm64 *r = (struct pt_regs___arm64 *)regs;
	arg[0] = r->orig_x0; // x0 is the return value once the syscall is done
	arg[1] = r->regs[1];
	arg[2] = r->regs[2];
	arg[3] = r->regs[3];
	arg[4] = r->regs[4];
}
#else
#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_READV 19
#define SYS_WRITEV 20
#define SYS_SENDTO 44
#define SYS_RECVFROM 45
#define SYS_SENDMSG 46
#define SYS_RECVMSG 47
#define SYS_RECVMMSG 299
#define SYS_SENDMMSG 307
static __always_inline long syscall_nr(struct pt_regs *regs)
{
	return regs->orig_ax;
}
static __always_inline void syscall_args(struct pt_regs *regs, __u64 arg[5])
{
	arg[0] = regs->di;
	arg[1] = regs->si;
	arg[2] = regs->dx;
	arg[3] = regs->r10;
	arg[4] = regs->r8;
}
#endif

static __always_inline __u8 syscall_kind(long nr)
{
	switch (nr) {
	case SYS_READ: return K_READ;
	case SYS_READV: return K_READV;
	case SYS_RECVFROM: return K_RECVFROM;
	case SYS_RECVMSG: return K_RECVMSG;
	case SYS_RECVMMSG: return K_RECVMMSG;
	case SYS_WRITE: return K_WRITE;
	case SYS_WRITEV: return K_WRITEV;
	case SYS_SENDTO: return K_SENDTO;
	case SYS_SENDMSG: return K_SENDMSG;
	case SYS_SENDMMSG: return K_SENDMMSG;
	}
	return 0;
}

// One socket send or receive: the syscall's arguments and what it moved. A sendmmsg or
// recvmmsg is one of these per message (the tracepoints fire per message).
struct l7_call {
	struct l7_args a;
	__u64 ret; // bytes moved
	__u64 ts;
	__u64 pid_tgid;
	__u64 cgroup_id;
	__u32 idx; // sendmmsg, recvmmsg: the message's index in the vector
	__u32 _pad;
};

// set_iovecs fills s->src from a user iovec array of cnt entries, at most bytes in total.
static __always_inline void set_iovecs(struct l7_scratch *s, __u64 iov, __u64 cnt, __u32 bytes)
{
	struct l7_src *src = &s->src;
	struct l7_iovec *v = s->iov;
	src->n = 0;
	src->bytes = 0;
	if (cnt == 0)
		return;
	if (cnt > L7_MAX_IOV)
		cnt = L7_MAX_IOV;
	__u32 sz = (MASKED(cnt - 1, L7_MAX_IOV - 1) + 1) * sizeof(struct l7_iovec);
	if (!iov || bpf_probe_read_user(v, sz, (void *)iov))
		return;
	__u32 left = bytes;
	for (int i = 0; i < L7_MAX_IOV; i++) {
		if (i >= cnt || left == 0)
			break;
		__u32 l = v[i].len > left ? left : v[i].len;
		src->base[i] = v[i].base;
		src->len[i] = l;
		left -= l;
		src->n = i + 1;
	}
	src->bytes = bytes - left;
}

// set_msghdr fills s->src from a user msghdr.
static __always_inline void set_msghdr(struct l7_scratch *s, __u64 msg, __u32 bytes)
{
	struct l7_msghdr *h = &s->msg;
	s->src.n = 0;
	s->src.bytes = 0;
	if (!msg || bpf_probe_read_user(h, sizeof(*h), (void *)msg))
		return;
	set_iovecs(s, h->iov, h->iovlen, bytes);
}

// copy_out copies bytes [off, off+n) of the message to payload[dst...]; n < 4096, dst < 16384.
// A global function: the verifier checks it once, not at each of its many callers.
__attribute__((noinline)) int copy_out(struct l7_scratch *s, __u32 off, __u32 dst, __u32 n)
{
	if (!s)
		return 0;
	struct l7_src *src = &s->src;
	if (src->n == 1) {
		bpf_probe_read_user(&s->payload[MASKED(dst, PMASK)], MASKED(n, LMASK), (void *)(src->base[0] + off));
		return 0;
	}
	__u32 pos = 0;
	for (int i = 0; i < L7_MAX_IOV; i++) {
		if (i >= src->n || n == 0)
			break;
		__u32 l = src->len[i];
		if (off < pos + l) {
			__u32 in = off - pos;
			__u32 k = l - in;
			if (k > n)
				k = n;
			bpf_probe_read_user(&s->payload[MASKED(dst, PMASK)], MASKED(k, LMASK), (void *)(src->base[i] + in));
			dst += k;
			off += k;
			n -= k;
		}
		pos += l;
	}
	return 0;
}

static __always_inline __u32 capture_size(__u8 p)
{
	switch (p) {
	case L7_PROTO_HTTP:
	case L7_PROTO_REDIS:
	case L7_PROTO_MEMCACHED:
	case L7_PROTO_NATS:
		return 1024;
	case L7_PROTO_CLICKHOUSE:
		return 256;
	case L7_PROTO_CASSANDRA:
	case L7_PROTO_ZOOKEEPER:
		return 128;
	}
	return 512; // Postgres, MySQL, Mongo, Kafka, DNS, RabbitMQ
}

// put_entry writes a digest entry header at payload[pos].
static __always_inline void put_entry(struct l7_scratch *s, __u32 pos, __u64 offset, __u32 length, __u16 captured, __u16 flags)
{
	__u8 *e = &s->payload[MASKED(pos, PMASK)];
	*(__u64 *)e = offset;
	*(__u32 *)(e + 8) = length;
	*(__u16 *)(e + 12) = captured;
	*(__u16 *)(e + 14) = flags;
}

// The HTTP/2 digest of one syscall (internal/l7/digest.go is the reference).
struct l7_digest {
	struct l7_scratch *s;
	struct l7_h2 *h2;
	__u64 start;  // stream offset of the syscall's first byte
	__u64 end;
	__u32 pos;    // digest bytes written
	__u32 frames;
	__u8 truncated;
};

#define H2_HEADERS 1
#define H2_RST_STREAM 3
#define H2_PUSH_PROMISE 5
#define H2_CONTINUATION 9

static __always_inline int h2_captured(__u8 typ)
{
	return typ == H2_HEADERS || typ == H2_CONTINUATION || typ == H2_PUSH_PROMISE || typ == H2_RST_STREAM;
}

// h2_frame describes the frame whose header is at payload[pos+16..+9] (already written) and
// starts at stream offset at; its payload begins at byte poff of the syscall.
static __always_inline int h2_frame(struct l7_digest *d, __u64 at, __u32 poff)
{
	struct l7_scratch *s = d->s;
	__u32 pos = d->pos;
	__u8 *h = &s->payload[MASKED(pos + 16, PMASK)];
	__u32 length = (__u32)h[0] << 16 | (__u32)h[1] << 8 | h[2];
	__u8 typ = h[3];
	__u32 capture = 0;
	if (typ == H2_HEADERS || typ == H2_CONTINUATION || typ == H2_PUSH_PROMISE)
		capture = L7_H2_BLOCK_CAPTURE;
	else if (typ == H2_RST_STREAM)
		capture = 4;
	__u32 avail = (__u32)(d->end - d->start) - poff;
	__u32 c = length < avail ? length : avail;
	if (c > capture)
		c = capture;
	if (pos + 16 + 9 + c > L7_DIGEST_BUDGET) {
		d->truncated = 1;
		d->h2->synced = 0;
		return 1;
	}
	if (c)
		copy_out(s, poff, pos + 25, c);
	put_entry(s, pos, at, 9 + length, 9 + c, 0);
	d->pos = pos + 25 + c;
	d->h2->next = at + 9 + length;
	if (d->h2->next > d->end && h2_captured(typ)) {
		__u64 left = d->h2->next - d->end;
		d->h2->cont_left = left;
		__u32 cc = capture - c;
		d->h2->cont_capture = cc < left ? cc : left;
	}
	return 0;
}

// h2_next_frame is the bpf_loop callback: one frame that starts in the syscall per call.
static long h2_next_frame(__u32 i, void *ctx)
{
	struct l7_digest *d = ctx;
	struct l7_h2 *h2 = d->h2;
	if (h2->next >= d->end)
		return 1;
	if (d->frames == L7_H2_MAX_FRAMES) {
		h2->synced = 0;
		d->truncated = 1;
		return 1;
	}
	__u32 at = h2->next - d->start;
	__u32 left = (__u32)(d->end - d->start) - at;
	if (left < 9) {
		// A header cut by the syscall's end: carried into the next one.
		copy_out(d->s, at, L7_DIGEST_BUDGET + 64, left);
		__u8 *p = &d->s->payload[L7_DIGEST_BUDGET + 64];
		for (int k = 0; k < 8; k++)
			if (k < left)
				h2->hdr[k] = p[k];
		h2->hdr_len = left;
		h2->next = d->end;
		return 1;
	}
	if (d->pos + 25 > L7_DIGEST_BUDGET) {
		d->truncated = 1;
		h2->synced = 0;
		return 1;
	}
	copy_out(d->s, at, d->pos + 16, 9);
	if (h2_frame(d, h2->next, at + 9))
		return 1;
	d->frames++;
	return 0;
}

static __always_inline int h2_plausible(struct l7_scratch *s, __u32 pos)
{
	__u8 *h = &s->payload[MASKED(pos, PMASK)];
	__u32 length = (__u32)h[0] << 16 | (__u32)h[1] << 8 | h[2];
	return h[3] <= 9 && length <= (1 << 14) && !(h[5] & 0x80);
}

#define H2_TRUNCATED (1 << 16)

// l7_h2_digest writes the digest of the message into the payload area and returns its size,
// with H2_TRUNCATED set when frames were left undescribed. A global function: verified once.
__attribute__((noinline)) int l7_h2_digest(struct l7_scratch *s, struct l7_h2 *h2, __u64 start, __u32 bytes)
{
	if (!s || !h2)
		return 0;
	__u8 trunc = 0, *truncated = &trunc;
	struct l7_digest d = {.s = s, .h2 = h2, .start = start, .end = start + bytes};
	if (h2->preface) {
		// The preface, or the part of it this first syscall moved (detection checked it).
		h2->preface = 0;
		__u32 n = bytes < 24 ? bytes : 24;
		copy_out(s, 0, 16, n);
		put_entry(s, 0, start, n, n, 0);
		d.pos = 16 + n;
	}
	if (!h2->synced) {
		if (bytes < 9)
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		copy_out(s, 0, L7_DIGEST_BUDGET + 64, 9);
		if (!h2_plausible(s, L7_DIGEST_BUDGET + 64))
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		h2->synced = 1;
		h2->next = start;
		h2->hdr_len = 0;
		h2->cont_left = 0;
	}
	if (h2->cont_left > 0) {
		__u32 n = h2->cont_left < bytes ? h2->cont_left : bytes;
		__u32 c = n < h2->cont_capture ? n : h2->cont_capture;
		if (c > L7_H2_BLOCK_CAPTURE)
			c = L7_H2_BLOCK_CAPTURE;
		if (d.pos + 16 + c > L7_DIGEST_BUDGET) {
			h2->synced = 0;
			*truncated = 1;
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		}
		if (c)
			copy_out(s, 0, d.pos + 16, c);
		put_entry(s, d.pos, start, h2->cont_left, c, 1);
		d.pos += 16 + c;
		h2->cont_left -= n;
		h2->cont_capture -= c;
	}
	if (h2->hdr_len > 0) {
		__u32 have = h2->hdr_len & 15;
		__u32 k = 9 - have;
		if (k > bytes)
			k = bytes;
		if (have + k < 9) {
			copy_out(s, 0, L7_DIGEST_BUDGET + 64, k);
			__u8 *p = &s->payload[L7_DIGEST_BUDGET + 64];
			for (int j = 0; j < 8; j++)
				if (j < k && have + j < 9)
					h2->hdr[(have + j) & 7] = p[j];
			h2->hdr_len = have + k;
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		}
		if (d.pos + 25 > L7_DIGEST_BUDGET) {
			h2->synced = 0;
			*truncated = 1;
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		}
		__u8 *e = &s->payload[MASKED(d.pos + 16, PMASK)];
		for (int j = 0; j < 8; j++)
			if (j < have)
				e[j] = h2->hdr[j];
		copy_out(s, 0, d.pos + 16 + have, k);
		h2->hdr_len = 0;
		if (h2_frame(&d, start - have, k)) {
			*truncated = d.truncated;
			return d.pos | (trunc ? H2_TRUNCATED : 0);
		}
	}
	bpf_loop(L7_H2_MAX_FRAMES + 1, h2_next_frame, &d, 0);
	*truncated = d.truncated;
	return d.pos | (trunc ? H2_TRUNCATED : 0);
}

// output sends the record built in s; false when the ring buffer is full (counted).
static __always_inline int output(struct l7_scratch *s, __u32 size)
{
	__u64 flags = bpf_ringbuf_query(&l7_segments, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (size > sizeof(struct l7_segment) + L7_DIGEST_BUDGET)
		size = sizeof(struct l7_segment) + L7_DIGEST_BUDGET;
	if (bpf_ringbuf_output(&l7_segments, &s->seg, MASKED(size, 0x3fff), flags)) {
		count(C_LOST);
		return 0;
	}
	return 1;
}

// seeded_id returns the id the TCP tracer gave a connection open before the agent started, or
// 0. codexray.c's seeded_lookup builds the same key.
static __always_inline __u64 seeded_id(struct sock *sk)
{
	struct seeded_key k = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	k.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	k.family = family;
	k.sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	k.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(k.saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(k.daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(k.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(k.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	__u64 *id = bpf_map_lookup_elem(&seeded, &k);
	return id ? *id : 0;
}

// detect runs detection on the message gathered into s->det and, on a match, initialises the
// connection's protocol state. It returns the protocol, or 0.
static __always_inline __u8 detect(struct l7_scratch *s, struct l7_conn *c, struct sock *sk, __u8 flow, __u64 offset, __u32 bytes, __u32 avail)
{
	struct l7_detect_input *in = &s->det;
	in->total = bytes;
	in->flow = flow;
	in->udp = 0;
	in->dns_port = dns_ports(sk);
	in->last_byte = 0xff;
	if (in->data[0] == 'Q' && bytes > in->len && avail == bytes) {
		// Postgres: a simple query ends with NUL at the syscall's last byte.
		copy_out(s, bytes - 1, L7_DETECT_MAX + 64, 1);
		in->last_byte = s->payload[L7_DETECT_MAX + 64];
	}
	int r = l7_detect(in);
	__u8 p = r & 0xff;
	if (!p || p > L7_PROTO_MAX) {
		if (++c->attempts >= L7_DETECT_ATTEMPTS) {
			c->protocol = L7_PROTO_NONE;
			count(C_GIVEN_UP);
		}
		return 0;
	}
	c->protocol = p;
	c->flags = (r >> 8) & L7_ROLE_SERVER ? L7_SEG_SERVER : 0;
	c->fresh = 1;
	count(C_DETECTED);
	if (!(c->flags & L7_SEG_SERVER)) {
		__u64 id = seeded_id(sk);
		if (id) {
			c->id = id;
			count(C_SEEDED);
		}
	}
	if (p == L7_PROTO_HTTP2) {
		// The flow that carried the preface is digested from it; the other from its next byte.
		struct l7_h2 *h = &c->flow[flow & 1].h2;
		h->preface = 1;
		h->synced = 1;
		h->next = offset + 24;
		struct l7_h2 *o = &c->flow[(flow ^ 1) & 1].h2;
		o->synced = 1;
		o->next = c->flow[(flow ^ 1) & 1].offset;
	}
	return p;
}

// l7_message handles one message moved on a connection with L7 state c: detection,
// suppression and the record. A global function: verified once for both programs.
__attribute__((noinline)) int l7_message(struct l7_call *call, struct l7_conn *c)
{
	if (!call || !c)
		return 1;
	__u32 zero = 0;
	struct l7_scratch *s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return 1;
	struct l7_args *a = &call->a;
	__u8 kind = a->kind;
	__u8 flow = K_RECEIVED(kind) ? 1 : 0;
	__u32 bytes = call->ret;
	switch (kind) {
	case K_READ:
	case K_RECVFROM:
	case K_WRITE:
	case K_SENDTO:
		s->src.n = 1;
		s->src.base[0] = a->buf;
		// A datagram read with MSG_TRUNC reports its whole length, more than the buffer holds.
		s->src.len[0] = K_RECEIVED(kind) && bytes > a->count ? a->count : bytes;
		s->src.bytes = s->src.len[0];
		break;
	case K_READV:
	case K_WRITEV:
		set_iovecs(s, a->buf, a->count, bytes);
		break;
	case K_RECVMSG:
	case K_SENDMSG:
		set_msghdr(s, a->buf, bytes);
		break;
	default: // K_RECVMMSG, K_SENDMMSG: this message's msghdr in the vector
		set_msghdr(s, a->buf + (__u64)call->idx * sizeof(struct mmsghdr), bytes);
	}

	struct sock *sk = (struct sock *)a->sk;
	struct l7_flow *fl = &c->flow[flow & 1];
	__u64 offset = fl->offset;
	fl->offset = offset + bytes;
	__u32 avail = s->src.bytes; // bytes the buffers hold: what can be captured
	if (!avail || !s->src.n)
		return 0;

	__u32 captured = 0;
	__u8 p = c->protocol;
	if (!p) {
		__u32 n = avail < L7_DETECT_MAX ? avail : L7_DETECT_MAX;
		copy_out(s, 0, 0, n);
		s->det.len = n;
		p = detect(s, c, sk, flow, offset, bytes, avail);
		if (!p)
			return 0;
		captured = n;
	} else if (p != L7_PROTO_HTTP2 && p != L7_PROTO_RABBITMQ && p != L7_PROTO_NATS && !(c->flags & L7_SEG_UDP)) {
		if (fl->run >= suppress_after && fl->run_bytes >= suppress_bytes) {
			fl->run_bytes = fl->run_bytes + bytes < fl->run_bytes ? ~0u : fl->run_bytes + bytes;
			count(C_SUPPRESSED);
			return 0;
		}
	}

	s->seg.timestamp_ns = call->ts;
	s->seg.sock = c->id;
	s->seg.cgroup_id = call->cgroup_id;
	s->seg.offset = offset;
	s->seg.pid = call->pid_tgid >> 32;
	s->seg.fd = a->fd;
	s->seg.length = bytes;
	s->seg.protocol = p;
	s->seg.flags = (flow ? L7_SEG_RECEIVED : 0) | (c->flags & (L7_SEG_SERVER | L7_SEG_UDP)) | (c->fresh ? L7_SEG_NEW : 0);
	if (p == L7_PROTO_HTTP2) {
		int r = l7_h2_digest(s, &fl->h2, offset, bytes);
		captured = r & 0xffff;
		s->seg.flags |= L7_SEG_DIGEST;
		if (r & H2_TRUNCATED) {
			s->seg.flags |= L7_SEG_TRUNCATED;
			count(C_TRUNCATED);
		}
	} else {
		__u32 cap = capture_size(p);
		if (cap > avail)
			cap = avail;
		if (captured < cap) // the detecting syscall gathered min(bytes, L7_DETECT_MAX) already
			copy_out(s, captured, captured, cap - captured);
		captured = cap;
	}
	s->seg.captured = captured;
	if (output(s, sizeof(struct l7_segment) + (captured & PMASK)))
		c->fresh = 0;
	if (fl->run < 0xffff)
		fl->run++;
	fl->run_bytes = fl->run_bytes + bytes < fl->run_bytes ? ~0u : fl->run_bytes + bytes;
	c->flow[(flow ^ 1) & 1].run = 0;
	c->flow[(flow ^ 1) & 1].run_bytes = 0;
	return 0;
}

// mmsg_index returns the index, in the vector of a sendmmsg or recvmmsg, of the message a
// socket event belongs to. The tracepoints fire once per message without saying which: the
// index continues from the socket's previous event when that was the same vector's and nothing
// else moved on the socket since (both offsets unchanged), else it restarts at 0. A receiver
// that only ever calls recvmmsg on a socket and gets fewer messages than it asked for makes
// the next call's index continue from there (a known limit, CONTRACT.md §2).
// A global function: its stack is not added to l7_message's. call has the socket, the vector
// (buf), its length (count), the kind and the bytes moved.
__attribute__((noinline)) __u32 mmsg_index(struct l7_call *call, __u64 sent, __u64 received)
{
	if (!call)
		return 0;
	__u64 key = call->a.sk;
	__u64 off[2] = {sent, received};
	struct l7_mmsg_hint *h = bpf_map_lookup_elem(&l7_mmsg_hints, &key);
	__u32 idx = 0;
	if (h && h->vec == call->a.buf && h->offset[0] == off[0] && h->offset[1] == off[1] && h->next < call->a.count)
		idx = h->next;
	struct l7_mmsg_hint n = {.vec = call->a.buf, .next = idx + 1};
	n.offset[0] = off[0];
	n.offset[1] = off[1];
	n.offset[K_RECEIVED(call->a.kind) ? 1 : 0] += call->ret;
	bpf_map_update_elem(&l7_mmsg_hints, &key, &n, BPF_ANY);
	return idx;
}

// new_conn creates the L7 state of a socket new_socket accepted (verdict 1; -1: a TCP socket
// that is never worth looking at). A global function: verified once.
__attribute__((noinline)) int new_conn(struct l7_call *call, int verdict)
{
	if (!call)
		return 0;
	__u32 zero = 0;
	struct l7_scratch *s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return 0;
	__u64 key = call->a.sk;
	// No state for a closed TCP socket: its close event has passed (a peer's reset during this
	// write), so nothing would delete the state, and the next socket at this address would
	// inherit its protocol, role and offsets. Checked here, in a function of its own, because
	// sock_event's stack is at the limit.
	if (!call->a.udp && BPF_CORE_READ((struct sock *)key, __sk_common.skc_state) == TCP_CLOSE)
		return 0;
	struct l7_conn *fresh = &s->conn;
	__builtin_memset(fresh, 0, sizeof(*fresh));
	fresh->id = key;
	if (verdict < 0) {
		fresh->protocol = L7_PROTO_NONE;
	} else if (call->a.udp) {
		fresh->protocol = L7_PROTO_DNS;
		fresh->flags = L7_SEG_UDP | (BPF_CORE_READ((struct sock *)key, __sk_common.skc_num) == 53 ? L7_SEG_SERVER : 0);
		fresh->fresh = 1;
		fresh->ino = call->a.ino;
	}
	bpf_map_update_elem(&l7_conns, &key, fresh, BPF_NOEXIST);
	// A reset handled on another CPU between the check above and the insert found no state
	// to delete: look again, so that such state lives one event at most.
	if (!call->a.udp && BPF_CORE_READ((struct sock *)key, __sk_common.skc_state) == TCP_CLOSE)
		bpf_map_delete_elem(&l7_conns, &key);
	return 0;
}

// call_names_sock says whether the call's fd is the event's socket, and sets call->a.ino. A
// global function: its stack is not added to sock_event's, which is at the limit.
__attribute__((noinline)) int call_names_sock(struct l7_call *call)
{
	if (!call)
		return 0;
	return fd_sock_ino(call->a.fd, &call->a.ino) == (struct sock *)call->a.sk;
}

// sock_event handles sock_send_length / sock_recv_length(struct sock *sk, int ret, int flags):
// bytes moved on a socket by the current task.
static __always_inline int sock_event(struct bpf_raw_tracepoint_args *ctx, __u8 received)
{
	int ret = (int)ctx->args[1];
	if (ret <= 0)
		return 0;
	if (received && ((__u32)ctx->args[2] & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0; // peeked bytes will be read again; the error queue is not the stream
	__u64 key = ctx->args[0];
	struct l7_conn *c = bpf_map_lookup_elem(&l7_conns, &key);
	if (c && c->protocol == L7_PROTO_NONE)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & (PF_KTHREAD | PF_IO_WORKER)) {
		// No syscall of the task moved these bytes: counted, not captured.
		if (c)
			c->flow[received & 1].offset += ret;
		return 0;
	}
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u8 kind = syscall_kind(syscall_nr(regs));
	if (!kind || K_RECEIVED(kind) != received) {
		// Moved by another syscall (sendfile, splice, io_uring_enter): counted in the flow's
		// offset, so that user space sees a gap, not captured.
		if (c)
			c->flow[received & 1].offset += ret;
		return 0;
	}
	__u64 arg[5];
	syscall_args(regs, arg);
	struct l7_call call = {.a = {.sk = key, .buf = arg[1], .fd = arg[0], .kind = kind}, .ret = ret};
	__u64 dest = 0;
	int dest_kind = DEST_NONE;
	switch (kind) {
	case K_READ:
	case K_RECVFROM:
	case K_READV:
	case K_WRITEV:
		call.a.count = arg[2];
		break;
	case K_SENDTO:
		dest = arg[4];
		dest_kind = DEST_SOCKADDR;
		break;
	case K_SENDMSG:
		dest = arg[1];
		dest_kind = DEST_MSGHDR;
		break;
	case K_RECVMMSG:
	case K_SENDMMSG:
		call.a.count = arg[2];
		call.idx = mmsg_index(&call, c ? c->flow[0].offset : 0, c ? c->flow[1].offset : 0);
		dest = arg[1] + (__u64)call.idx * sizeof(struct mmsghdr);
		dest_kind = kind == K_SENDMMSG ? DEST_MSGHDR : DEST_NONE;
		break;
	}
	struct sock *sk = (struct sock *)key;
	if (c && (c->flags & L7_SEG_UDP)) {
		// UDP sockets get no close record: state may outlive its socket, and the address may
		// now be another socket's (then the fd names another socket, or the same address with
		// another inode). Checked on each datagram (DNS traffic is small).
		if (!call_names_sock(&call))
			return 0;
		if (call.a.ino != c->ino) {
			bpf_map_delete_elem(&l7_conns, &key);
			c = 0;
		} else {
			call.a.udp = 1;
		}
	}
	if (!c) {
		int verdict = new_socket(&call.a, sk, dest, dest_kind);
		if (!verdict)
			return 0;
		new_conn(&call, verdict);
		if (verdict < 0)
			return 0;
		c = bpf_map_lookup_elem(&l7_conns, &key);
		if (!c)
			return 0;
	}
	call.pid_tgid = bpf_get_current_pid_tgid();
	call.ts = bpf_ktime_get_ns();
	call.cgroup_id = bpf_get_current_cgroup_id();
	l7_message(&call, c);
	return 0;
}

SEC("raw_tracepoint/sock_send_length")
int l7_sock_send(struct bpf_raw_tracepoint_args *ctx)
{
	return sock_event(ctx, 0);
}

SEC("raw_tracepoint/sock_recv_length")
int l7_sock_recv(struct bpf_raw_tracepoint_args *ctx)
{
	return sock_event(ctx, 1);
}

// inet_sock_set_state(sk, oldstate, newstate): a TCP connection closed. Its L7 state goes, and
// user space learns of it in order with the connection's segments.
SEC("raw_tracepoint/inet_sock_set_state")
int l7_sock_close(struct bpf_raw_tracepoint_args *ctx)
{
	if ((int)ctx->args[2] != TCP_CLOSE)
		return 0;
	__u64 key = ctx->args[0];
	struct l7_conn *c = bpf_map_lookup_elem(&l7_conns, &key);
	if (!c)
		return 0;
	if (c->protocol && c->protocol <= L7_PROTO_MAX && !c->fresh) {
		struct l7_segment seg = {
			.timestamp_ns = bpf_ktime_get_ns(),
			.sock = c->id,
			.protocol = c->protocol,
			.flags = L7_SEG_CLOSED | (c->flags & L7_SEG_SERVER),
		};
		if (bpf_ringbuf_output(&l7_segments, &seg, sizeof(seg), BPF_RB_NO_WAKEUP))
			count(C_LOST);
		else
			count(C_CLOSED);
	}
	bpf_map_delete_elem(&l7_conns, &key);
	return 0;
}

// l7_test_detect runs l7_detect on bytes of the calling process (BPF_PROG_TEST_RUN): args[0]
// points to them, args[1] is their length, args[2] the syscall length, args[3] flow | udp << 8
// | dns_port << 16. Never attached; the tests compare it with internal/l7's detectors.
SEC("raw_tracepoint/l7_test_detect")
int l7_test_detect(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0;
	struct l7_scratch *s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return 0;
	__u32 n = ctx->args[1];
	if (n > L7_DETECT_MAX)
		n = L7_DETECT_MAX;
	if (bpf_probe_read_user(s->det.data, MASKED(n, 0x7ff), (void *)ctx->args[0]))
		return 0;
	s->det.len = n;
	s->det.total = ctx->args[2];
	s->det.flow = ctx->args[3] & 1;
	s->det.udp = (ctx->args[3] >> 8) & 1;
	s->det.dns_port = (ctx->args[3] >> 16) & 1;
	s->det.last_byte = 0;
	return l7_detect(&s->det);
}
