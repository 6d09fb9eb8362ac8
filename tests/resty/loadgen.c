/* loadgen: a minimal HTTP/1.1 keep-alive load generator for the
 * resty.walrouter bench (tests/resty/bench.py builds and runs it).
 *   loadgen PORT PATH CONNECTIONS SECONDS
 * Responses must carry Content-Length. Prints: requests errors rps p50_us p99_us */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256
#define MAXLAT 2000000

typedef struct {
    int fd;
    char buf[8192];
    size_t len;
    uint64_t sent;
} client;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int open_conn(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

/* A whole response in c->buf: its length, else 0. */
static size_t complete(const client *c) {
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return 0;
    const char *cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length:", 15);
    if (!cl) cl = memmem(c->buf, (size_t)(end - c->buf), "content-length:", 15);
    if (!cl) return 0;
    size_t body = (size_t)strtoul(cl + 15, NULL, 10);
    size_t total = (size_t)(end - c->buf) + 4 + body;
    return c->len >= total ? total : 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: loadgen PORT PATH CONNECTIONS SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[3]);
    double secs = atof(argv[4]);
    if (n < 1 || n > MAXC) return 2;
    char req[1024];
    int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    static client cs[MAXC];
    static struct pollfd pf[MAXC];
    uint32_t *lat = malloc(sizeof *lat * MAXLAT);
    size_t nlat = 0, errors = 0;
    uint64_t start = now_us(), stop = start + (uint64_t)(secs * 1e6);
    for (int i = 0; i < n; i++) {
        cs[i].fd = open_conn(port);
        cs[i].sent = now_us();
        if (write(cs[i].fd, req, (size_t)reqlen) != reqlen) return 3;
        pf[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
    }
    while (now_us() < stop) {
        if (poll(pf, (nfds_t)n, 100) < 0) return 3;
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & POLLIN)) continue;
            client *c = &cs[i];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) return 4;
            c->len += (size_t)r;
            size_t t = complete(c);
            if (!t) continue;
            if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) errors++;
            uint64_t now = now_us();
            if (nlat < MAXLAT) lat[nlat++] = (uint32_t)(now - c->sent);
            memmove(c->buf, c->buf + t, c->len - t);
            c->len -= t;
            c->sent = now;
            if (write(c->fd, req, (size_t)reqlen) != reqlen) return 3;
        }
    }
    double took = (double)(now_us() - start) / 1e6;
    qsort(lat, nlat, sizeof *lat, cmp);
    printf("%zu %zu %.0f %u %u\n", nlat, errors, (double)nlat / took, nlat ? lat[nlat / 2] : 0,
           nlat ? lat[nlat * 99 / 100] : 0);
    return 0;
}
