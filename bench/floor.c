/* The cold-start floor (bench/coldstart.sh): the least a provided.al2023
   bootstrap can do before its first invocation, a glibc-only program that
   connects to $AWS_LAMBDA_RUNTIME_API (HOST:PORT, numeric) and asks for the
   next event, then waits for the answer. Anything a real bootstrap spends
   above this is its own start cost. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[64], req[256], buf[4096];
    const char *colon = api ? strrchr(api, ':') : NULL;
    struct sockaddr_in sa;
    int fd, n;
    if (!colon || (size_t)(colon - api) >= sizeof host) return 2;
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = 0;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 2;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return 1;
    n = snprintf(req, sizeof req, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n", api);
    if (write(fd, req, (size_t)n) != n) return 1;
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
    return 0;
}
