// gslbd's XDP program: UDP to port 53 of the configured addresses goes to the AF_XDP socket of
// the queue it arrived on; everything else goes on to the kernel untouched.
//
// Built by bpf/build.sh into bpf/gslbd_xdp.o, which is committed: building gslbd needs no
// clang. A test rebuilds it when clang-14 is present and checks that the bytes match.
//
// Packets the program cannot judge simply (VLAN tags, IPv4 options or fragments, IPv6
// extension headers) pass to the kernel, where gslbd's sockets answer them as before.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))

// The legacy map definition, as aya reads it from the "maps" section.
struct map_def {
    __u32 type;
    __u32 key_size;
    __u32 value_size;
    __u32 max_entries;
    __u32 flags;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

// Receive queue -> AF_XDP socket.
struct map_def SEC("maps") xsks = {BPF_MAP_TYPE_XSKMAP, 4, 4, 256, 0};
// The addresses whose UDP port 53 gslbd takes (network byte order), value unused.
struct map_def SEC("maps") v4 = {BPF_MAP_TYPE_HASH, 4, 1, 64, 0};
struct map_def SEC("maps") v6 = {BPF_MAP_TYPE_HASH, 16, 1, 64, 0};
// Per CPU: [0] packets passed to the kernel, [1] packets redirected to a socket.
struct map_def SEC("maps") counts = {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2, 0};

static __attribute__((always_inline)) int count(__u32 i, int verdict) {
    __u64 *n = bpf_map_lookup_elem(&counts, &i);
    if (n)
        *n += 1;
    return verdict;
}

SEC("xdp")
int gslbd_xdp(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct udphdr *udp;
    if ((void *)(eth + 1) > end)
        return count(0, XDP_PASS);
    if (eth->h_proto == __constant_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
            (ip->frag_off & __constant_htons(0x3fff)) != 0 || !bpf_map_lookup_elem(&v4, &ip->daddr))
            return count(0, XDP_PASS);
        udp = (void *)(ip + 1);
    } else if (eth->h_proto == __constant_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP ||
            !bpf_map_lookup_elem(&v6, &ip6->daddr))
            return count(0, XDP_PASS);
        udp = (void *)(ip6 + 1);
    } else {
        return count(0, XDP_PASS);
    }
    if ((void *)(udp + 1) > end || udp->dest != __constant_htons(53))
        return count(0, XDP_PASS);
    // No socket on this queue: the kernel has the packet.
    int verdict = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
    return count(verdict == XDP_REDIRECT ? 1 : 0, verdict);
}

char _license[] SEC("license") = "Apache-2.0";
