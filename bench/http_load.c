/* http_load.c - keep-alive GET load on one URL path: requests per second and latency percentiles
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* usage: http_load PORT PATH CONNECTIONS SECONDS [BODY_FILE]
 * Each connection is one thread sending GET PATH back to back over one
 * keep-alive connection; prints requests/s, non-200 answers and p50/p99/max.
 * With BODY_FILE: POST PATH with that JSON body instead, and 201 is the
 * answer counted as good (POST /v1/jobs). */

struct conn {
    int port, seconds;
    const char *path;
    const char *body; /* NULL: GET */
    size_t body_len;
    double *lat; /* seconds per request */
    size_t n, cap;
    long bad;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void *run(void *arg)
{
    struct conn *c = arg;
    char head[512], buf[65536], *req;
    int hl = c->body
                 ? snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                            "application/json\r\nContent-Length: %zu\r\n\r\n",
                            c->path, c->body_len)
                 : snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", c->path);
    int len = hl + (int)c->body_len;
    const char *good = c->body ? "HTTP/1.1 201" : "HTTP/1.1 200";
    if (!(req = malloc((size_t)len))) return NULL;
    memcpy(req, head, (size_t)hl);
    if (c->body) memcpy(req + hl, c->body, c->body_len);
    int fd = dial(c->port);
    double end = now() + c->seconds;

    while (now() < end) {
        double t0 = now();
        if (write(fd, req, (size_t)len) != len) break;
        size_t got = 0;
        long need = -1;
        for (;;) {
            ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
            if (r <= 0) goto done;
            got += (size_t)r;
            buf[got] = '\0';
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh && need < 0) {
                char *cl = strcasestr(buf, "Content-Length:");
                need = (long)(eoh + 4 - buf) + (cl ? atol(cl + 15) : 0);
            }
            if (need >= 0 && (long)got >= need) break;
        }
        if (strncmp(buf, good, 12)) c->bad++;
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 4096;
            c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
        }
        c->lat[c->n++] = now() - t0;
    }
done:
    close(fd);
    free(req);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static char body[1 << 16];
    size_t body_len = 0;
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: http_load PORT PATH CONNECTIONS SECONDS [BODY_FILE]\n");
        return 2;
    }
    if (argc == 6) {
        FILE *f = fopen(argv[5], "rb");
        if (!f || !(body_len = fread(body, 1, sizeof body, f))) {
            perror(argv[5]);
            return 2;
        }
        fclose(f);
    }
    int nc = atoi(argv[3]);
    struct conn *c = calloc((size_t)nc, sizeof *c);
    pthread_t *t = calloc((size_t)nc, sizeof *t);
    double t0 = now();
    for (int i = 0; i < nc; i++) {
        c[i] = (struct conn){.port = atoi(argv[1]),
                             .path = argv[2],
                             .seconds = atoi(argv[4]),
                             .body = argc == 6 ? body : NULL,
                             .body_len = body_len};
        pthread_create(&t[i], NULL, run, &c[i]);
    }
    size_t total = 0;
    long bad = 0;
    for (int i = 0; i < nc; i++) {
        pthread_join(t[i], NULL);
        total += c[i].n;
        bad += c[i].bad;
    }
    double secs = now() - t0;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nc; i++) {
        memcpy(all + k, c[i].lat, c[i].n * sizeof *all);
        k += c[i].n;
        free(c[i].lat);
    }
    qsort(all, total, sizeof *all, cmp);
    if (total)
        printf("%zu requests in %.1f s: %.0f req/s, non-%s %ld, p50 %.2f ms, p99 %.2f ms, "
               "max %.2f ms\n",
               total, secs, (double)total / secs, argc == 6 ? "201" : "200", bad,
               all[total / 2] * 1e3, all[(size_t)((double)total * 0.99)] * 1e3,
               all[total - 1] * 1e3);
    free(all);
    free(c);
    free(t);
    return total && !bad ? 0 : 1;
}
