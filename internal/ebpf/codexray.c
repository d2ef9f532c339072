// SPDX-License-Identifier: GPL-2.0
//go:build ignore

// The agent's kernel side: TCP connection lifecycle, per-connection byte counters and smoothed
// RTT, retransmits, process fork/exec/exit and OOM victims. Only tracepoints and raw tracepoints
// are used because kprobes and fentry are missing on some kernels the agent must run on.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

// Event types; internal/ebpf/event.go mirrors them.
#define CX_EVENT_CONNECT 1
#define CX_EVENT_CONNECT_FAILED 2
#define CX_EVENT_ACCEPT 3
#define CX_EVENT_LISTEN_OPEN 4
#define CX_EVENT_LISTEN_CLOSE 5
#define CX_EVENT_CLOSE 6
#define CX_EVENT_RETRANSMIT 7
#define CX_EVENT_PROCESS_FORK 8
#define CX_EVENT_PROCESS_EXEC 9
#define CX_EVENT_PROCESS_EXIT 10
#define CX_EVENT_OOM_KILL 11

#define CX_FLAG_INBOUND 1
// The connection was open before the agent started; the event's sock is user space's id.
#define CX_FLAG_SEEDED 2

// One fixed-size record for every event type keeps Go decoding allocation-free and simple.
struct event {
	__u64 timestamp_ns;
	__u64 sock;
	__u64 cgroup_id;
	__u64 duration_ns;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u32 type;
	__u32 pid;        // tgid of the context the event is attributed to
	__u32 tid;
	__u32 target_pid; // child (fork) or victim (OOM kill)
	__u32 srtt_us;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 flags;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns; // socket events: inode of the socket's network namespace
};

// Unused: it makes clang emit struct event's BTF, from which bpf2go (-type event) generates
// the Go type the decoder takes its layout from.
const struct event *unused_event __attribute__((unused));

// A connect() in flight. ESTABLISHED arrives in softirq, where the current task is whoever
// happened to run, so the connecting context is remembered here at SYN_SENT.
struct connecting_sock {
	__u64 start_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
};

// An established connection the agent saw open. Byte counters and RTT are updated in place so
// user space can read them while the connection is still open.
struct connection {
	__u64 cgroup_id;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u32 pid;
	__u32 srtt_us;
	__u32 flags;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connecting_sock);
} connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct connection);
} connections SEC(".maps");

// A connection that was already open when the agent started. User space finds it in
// /proc/<pid>/net/tcp{,6}, where no socket address is usable (kptr_restrict hashes it), so it
// is known by network namespace and 4-tuple: unique at any moment. The value is the id user
// space gave the connection; it comes back as the sock of the close and retransmit events.
struct seeded_key {
	__u32 netns; // inode of /proc/<pid>/ns/net
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC); // empty after the seeded connections closed
	__type(key, struct seeded_key);
	__type(value, __u64);
} seeded SEC(".maps");

// Size is set by the loader from the configuration.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");


// Readers are woken only once this many bytes are pending; below it the agent picks events
// up on its own short poll interval. Waking the reader for every event costs more CPU than
// the event itself. Set by the loader.
const volatile __u64 wakeup_bytes = 0;

static __always_inline void submit_event(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	// An OOM victim's cgroup disappears soon after the kill: user space must resolve it now.
	if (e->type == CX_EVENT_OOM_KILL || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline struct event *reserve_event(__u32 type)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&lost_events, &zero);
		if (lost)
			*lost += 1; // per-CPU slot: no atomic needed
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->timestamp_ns = bpf_ktime_get_ns();
	return e;
}

static __always_inline void current_ids(__u32 *pid, __u32 *tid)
{
	__u64 id = bpf_get_current_pid_tgid();
	*pid = id >> 32;
	*tid = (__u32)id;
}

// The cgroup v2 id of the cgroup that created the socket: the right owner in softirq context,
// where bpf_get_current_cgroup_id() would name an unrelated task.
static __always_inline __u64 sock_cgroup_id(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

static __always_inline void fill_addrs(struct event *e, struct sock *sk, __u16 family)
{
	e->family = family;
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	// inet_sport, not skc_num: tcp_set_state releases the port (skc_num = 0) before the
	// transition to CLOSE is traced.
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

// seeded_lookup finds user space's id of a connection open before the agent started.
static __always_inline __u64 *seeded_lookup(struct sock *sk, __u16 family, struct seeded_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	k->family = family;
	k->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	k->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(k->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(k->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(k->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(k->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	return bpf_map_lookup_elem(&seeded, k);
}

// inet_sock_set_state(const struct sock *sk, int oldstate, int newstate). The raw tracepoint
// skips building the trace record: on connection-heavy nodes this hook runs about seven times
// per connection, so its fixed cost matters.
SEC("raw_tracepoint/inet_sock_set_state")
int on_inet_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = (int)ctx->args[1];
	int newstate = (int)ctx->args[2];

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	__u64 skaddr = (__u64)sk;
	struct event *e;

	if (newstate == TCP_SYN_SENT) {
		struct connecting_sock c = {};
		c.start_ns = bpf_ktime_get_ns();
		c.cgroup_id = bpf_get_current_cgroup_id();
		current_ids(&c.pid, &c.tid);
		bpf_map_update_elem(&connecting, &skaddr, &c, BPF_ANY);
		return 0;
	}

	if (oldstate == TCP_SYN_SENT) {
		struct connecting_sock *c = bpf_map_lookup_elem(&connecting, &skaddr);
		if (!c)
			return 0; // connect started before the agent attached
		__u32 type = newstate == TCP_ESTABLISHED ? CX_EVENT_CONNECT : CX_EVENT_CONNECT_FAILED;
		if (type == CX_EVENT_CONNECT) {
			struct connection conn = {};
			conn.cgroup_id = c->cgroup_id;
			conn.pid = c->pid;
			bpf_map_update_elem(&connections, &skaddr, &conn, BPF_ANY);
		}
		e = reserve_event(type);
		if (e) {
			e->sock = skaddr;
			e->cgroup_id = c->cgroup_id;
			e->pid = c->pid;
			e->tid = c->tid;
			e->duration_ns = e->timestamp_ns - c->start_ns;
			fill_addrs(e, sk, family);
			submit_event(e);
		}
		bpf_map_delete_elem(&connecting, &skaddr);
		return 0;
	}

	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		// Inbound connections are counted per listen address only; they are not put into
		// the connections map, which keeps accept-heavy servers cheap to trace.
		e = reserve_event(CX_EVENT_ACCEPT);
		if (e) {
			e->sock = skaddr;
			e->cgroup_id = sock_cgroup_id(sk);
			e->flags = CX_FLAG_INBOUND;
			fill_addrs(e, sk, family);
			submit_event(e);
		}
		return 0;
	}

	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)) {
		e = reserve_event(newstate == TCP_LISTEN ? CX_EVENT_LISTEN_OPEN : CX_EVENT_LISTEN_CLOSE);
		if (e) {
			e->sock = skaddr;
			// listen() and close() run in process context, the socket's cgroup is still the
			// better owner: a listener may be handed over to another process.
			e->cgroup_id = sock_cgroup_id(sk);
			current_ids(&e->pid, &e->tid);
			fill_addrs(e, sk, family);
			submit_event(e);
		}
		return 0;
	}

	if (newstate == TCP_CLOSE) {
		struct connection *conn = bpf_map_lookup_elem(&connections, &skaddr);
		if (!conn) {
			// Only sockets user space seeded are looked up: the key is read for closes of
			// untracked (inbound) connections, never for their sends or receives.
			struct seeded_key k;
			__u64 *id = seeded_lookup(sk, family, &k);
			if (!id)
				return 0;
			e = reserve_event(CX_EVENT_CLOSE);
			if (e) {
				e->sock = *id;
				e->cgroup_id = sock_cgroup_id(sk);
				e->flags = CX_FLAG_SEEDED;
				fill_addrs(e, sk, family);
				submit_event(e);
			}
			bpf_map_delete_elem(&seeded, &k);
			return 0;
		}
		e = reserve_event(CX_EVENT_CLOSE);
		if (e) {
			e->sock = skaddr;
			e->cgroup_id = conn->cgroup_id;
			e->pid = conn->pid;
			e->flags = conn->flags;
			e->bytes_sent = conn->bytes_sent;
			e->bytes_received = conn->bytes_received;
			e->srtt_us = conn->srtt_us;
			fill_addrs(e, sk, family);
			submit_event(e);
		}
		bpf_map_delete_elem(&connections, &skaddr);
	}
	return 0;
}

// sock_send_length / sock_recv_length(struct sock *sk, int ret, int flags). Only sockets in the
// connections map (outbound TCP the agent saw open) are accounted, so the lookup is the filter.
static __always_inline void account_bytes(struct bpf_raw_tracepoint_args *ctx, int sent)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int ret = (int)ctx->args[1];
	int flags = (int)ctx->args[2];
	if (ret <= 0)
		return;
	if (!sent && (flags & MSG_PEEK))
		return; // peeked bytes will be read again
	__u64 skaddr = (__u64)sk;
	struct connection *conn = bpf_map_lookup_elem(&connections, &skaddr);
	if (!conn)
		return;
	if (sent)
		__sync_fetch_and_add(&conn->bytes_sent, ret);
	else
		__sync_fetch_and_add(&conn->bytes_received, ret);
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	conn->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; // srtt_us holds 8 * smoothed RTT
}

SEC("raw_tracepoint/sock_send_length")
int on_sock_send_length(struct bpf_raw_tracepoint_args *ctx)
{
	account_bytes(ctx, 1);
	return 0;
}

SEC("raw_tracepoint/sock_recv_length")
int on_sock_recv_length(struct bpf_raw_tracepoint_args *ctx)
{
	account_bytes(ctx, 0);
	return 0;
}

// tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb, ...): the socket is the
// first argument on every kernel since 4.x; later arguments differ and are not read.
SEC("raw_tracepoint/tcp_retransmit_skb")
int on_tcp_retransmit_skb(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 skaddr = (__u64)sk;
	__u64 cgroup_id;
	__u32 pid, flags = 0;

	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT) {
		struct connecting_sock *c = bpf_map_lookup_elem(&connecting, &skaddr);
		if (!c)
			return 0;
		cgroup_id = c->cgroup_id;
		pid = c->pid;
	} else {
		struct connection *conn = bpf_map_lookup_elem(&connections, &skaddr);
		if (conn) {
			cgroup_id = conn->cgroup_id;
			pid = conn->pid;
			flags = conn->flags;
		} else {
			flags = CX_FLAG_SEEDED;
		}
	}
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (flags == CX_FLAG_SEEDED) {
		// Retransmits are rare: looking up an untracked socket among the seeded ones is cheap.
		struct seeded_key k;
		__u64 *id = seeded_lookup(sk, family, &k);
		if (!id)
			return 0;
		skaddr = *id;
		cgroup_id = sock_cgroup_id(sk);
		pid = 0;
	}
	struct event *e = reserve_event(CX_EVENT_RETRANSMIT);
	if (!e)
		return 0;
	e->sock = skaddr;
	e->cgroup_id = cgroup_id;
	e->pid = pid;
	e->flags = flags;
	fill_addrs(e, sk, family);
	submit_event(e);
	return 0;
}

// sched_process_fork(struct task_struct *parent, struct task_struct *child)
SEC("raw_tracepoint/sched_process_fork")
int on_sched_process_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 child_pid = BPF_CORE_READ(child, pid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (child_pid != child_tgid)
		return 0; // a new thread, not a new process
	struct event *e = reserve_event(CX_EVENT_PROCESS_FORK);
	if (!e)
		return 0;
	current_ids(&e->pid, &e->tid);
	e->target_pid = child_tgid;
	e->cgroup_id = bpf_get_current_cgroup_id();
	submit_event(e);
	return 0;
}

SEC("raw_tracepoint/sched_process_exec")
int on_sched_process_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct event *e = reserve_event(CX_EVENT_PROCESS_EXEC);
	if (!e)
		return 0;
	current_ids(&e->pid, &e->tid);
	e->target_pid = e->pid;
	e->cgroup_id = bpf_get_current_cgroup_id();
	submit_event(e);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int on_sched_process_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid, tid;
	current_ids(&pid, &tid);
	if (pid != tid)
		return 0; // only the thread-group leader's exit ends the process for the agent
	struct event *e = reserve_event(CX_EVENT_PROCESS_EXIT);
	if (!e)
		return 0;
	e->pid = pid;
	e->tid = tid;
	e->target_pid = pid;
	e->cgroup_id = bpf_get_current_cgroup_id();
	submit_event(e);
	return 0;
}

// mark_victim(struct task_struct *task, uid_t uid). The current task is the one that hit the
// OOM condition, not necessarily the victim, so the victim's own cgroup is read from its task.
SEC("raw_tracepoint/mark_victim")
int on_mark_victim(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *victim = (struct task_struct *)ctx->args[0];
	struct event *e = reserve_event(CX_EVENT_OOM_KILL);
	if (!e)
		return 0;
	current_ids(&e->pid, &e->tid);
	e->target_pid = BPF_CORE_READ(victim, tgid);
	e->cgroup_id = BPF_CORE_READ(victim, cgroups, dfl_cgrp, kn, id);
	submit_event(e);
	return 0;
}
