/* delayproxy - a latency-only HTTP/1.1 proxy for benchmarks (bench/pipeline.sh).

     build/bench/delayproxy --upstream http://127.0.0.1:PORT [--port 0] [--delay-ms 20]

   It stands in for the network between a function and S3: every request is held DELAY ms
   once its head has arrived, then forwarded; bytes are otherwise relayed as they come, both
   ways, with no parsing of answers and no copy of a whole body. The stand-in must cost the
   function's machine little CPU, because the network it models costs the function none:
   tests/it/faultproxy.py reads each body whole into Python, which cost 5-7 ms of CPU per
   12 MP event on the benchmark's 2 cores. Faults are faultproxy's job, not this one's.

   Requests are delimited by Content-Length (what the S3 client and botocore send); a chunked
   request closes the connection with a message, rather than guessing where it ends. The port
   it listens on (127.0.0.1) is the first line of stdout. It exits on SIGTERM, SIGINT, or when
   its parent goes away. One thread a connection; upstream is connected per connection. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 65536
#define RELAY_BUF (256 * 1024)

static struct sockaddr_in upstream;
static long delay_ms = 20;

typedef struct conn {
    int client, up;
    char head[HEAD_MAX];   /* the request being read, up to the end of its head */
    size_t have;           /* bytes in head[] */
    long long body_left;   /* body bytes of the current request still to relay */
    char buf[RELAY_BUF];
} conn;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void hold(void)
{
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The end of a request head ("\r\n\r\n") in head[0..len), or NULL. */
static char *head_end(char *head, size_t len)
{
    size_t i;
    for (i = 0; i + 4 <= len; i++)
        if (!memcmp(head + i, "\r\n\r\n", 4)) return head + i;
    return NULL;
}

/* The body length a request head announces: 0 without one, -1 when it cannot be delimited. */
static long long body_length(const char *head, size_t len)
{
    const char *p = memchr(head, '\n', len), *end = head + len;
    long long n = 0;
    for (; p && p + 1 < end; p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        const char *line = p + 1;
        if (!strncasecmp(line, "transfer-encoding:", 18)) return -1;
        if (!strncasecmp(line, "content-length:", 15)) {
            char *stop;
            n = strtoll(line + 15, &stop, 10);
            if (n < 0 || stop == line + 15) return -1;
        }
    }
    return n;
}

/* Client bytes in c->buf[0..n): relay body bytes, collect heads, hold each head DELAY ms.
   -1 when the connection must close. */
static int from_client(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        if (c->body_left > 0) {
            size_t k = (unsigned long long)c->body_left < n ? (size_t)c->body_left : n;
            if (write_all(c->up, p, k)) return -1;
            c->body_left -= (long long)k;
            p += k;
            n -= k;
            continue;
        }
        {
            size_t k = n < HEAD_MAX - c->have ? n : HEAD_MAX - c->have;
            char *end;
            size_t used;
            memcpy(c->head + c->have, p, k);
            c->have += k;
            end = head_end(c->head, c->have);
            if (!end) {
                if (c->have < HEAD_MAX) return 0;
                fprintf(stderr, "delayproxy: a request head over %d bytes\n", HEAD_MAX);
                return -1;
            }
            used = (size_t)(end - c->head) + 4;
            if ((c->body_left = body_length(c->head, used)) < 0) {
                fprintf(stderr, "delayproxy: a body not delimited by Content-Length (chunked?)\n");
                return -1;
            }
            hold();
            if (write_all(c->up, c->head, used)) return -1;
            /* bytes past the head were copied from p: give them back to the loop */
            p += k - (c->have - used);
            n -= k - (c->have - used);
            c->have = 0;
        }
    }
    return 0;
}

/* Relay both ways until either side closes. */
static void relay(conn *c)
{
    for (;;) {
        struct pollfd pf[2] = {{c->client, POLLIN, 0}, {c->up, POLLIN, 0}};
        ssize_t n;
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (pf[1].revents) {   /* answers go back as they come */
            n = recv(c->up, c->buf, sizeof c->buf, 0);
            if (n <= 0 || write_all(c->client, c->buf, (size_t)n)) return;
        }
        if (pf[0].revents) {
            n = recv(c->client, c->buf, sizeof c->buf, 0);
            if (n <= 0 || from_client(c, c->buf, (size_t)n)) return;
        }
    }
}

static void *serve(void *arg)
{
    conn *c = (conn *)arg;
    int one = 1;
    c->up = socket(AF_INET, SOCK_STREAM, 0);
    if (c->up >= 0 && connect(c->up, (struct sockaddr *)&upstream, sizeof upstream) == 0) {
        setsockopt(c->up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        relay(c);
    } else {
        fprintf(stderr, "delayproxy: upstream: %s\n", strerror(errno));
    }
    if (c->up >= 0) close(c->up);
    close(c->client);
    free(c);
    return NULL;
}

static int parse_args(int argc, char **argv, int *port)
{
    const char *up = NULL;
    int i, up_port;
    char host[64];
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--upstream")) up = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) *port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--delay-ms")) delay_ms = atol(argv[i + 1]);
        else return -1;
    }
    if (i != argc || !up || delay_ms < 0 || *port < 0 || *port > 65535 ||
        sscanf(up, "http://%63[0-9.]:%d", host, &up_port) != 2 || up_port <= 0 || up_port > 65535)
        return -1;
    memset(&upstream, 0, sizeof upstream);
    upstream.sin_family = AF_INET;
    upstream.sin_port = htons((unsigned short)up_port);
    return inet_pton(AF_INET, host, &upstream.sin_addr) == 1 ? 0 : -1;
}

static int listen_on(int port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        return -1;
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0, fd;
    pid_t parent = getppid();
    pthread_attr_t attr;
    if (parse_args(argc, argv, &port)) {
        fprintf(stderr, "usage: delayproxy --upstream http://IP:PORT [--port N] [--delay-ms MS]\n");
        return 2;
    }
    if ((fd = listen_on(port)) < 0) {
        fprintf(stderr, "delayproxy: listen: %s\n", strerror(errno));
        return 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (getppid() == parent) {   /* SIGTERM and SIGINT end it by their default action */
        struct pollfd pf = {fd, POLLIN, 0};
        pthread_t t;
        conn *c;
        if (poll(&pf, 1, 500) <= 0) continue;
        if (!(c = (conn *)calloc(1, sizeof *c))) continue;
        c->up = -1;
        if ((c->client = accept(fd, NULL, NULL)) < 0 ||
            pthread_create(&t, &attr, serve, c) != 0) {
            if (c->client >= 0) close(c->client);
            free(c);
        }
    }
    return 0;
}
