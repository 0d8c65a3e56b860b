/* sigv4: SHA-256 throughput and signing rate, medians of several runs.
     sigv4 [MiB] [rounds]
   Prints "name value unit" lines for bench/sigv4.sh. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int sign_once(int presign, spim_buf *url)
{
    static const spim_header h[] = {
        { "Content-Type", "image/jpeg" }, { "x-amz-meta-sparta-stamped", "1" }, { "Cache-Control", "max-age=60" }
    };
    spim_credentials c;
    spim_sigv4_request r;
    spim_sigv4_params p;
    spim_sigv4_result res;
    spim_status st;
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    memset(&p, 0, sizeof p);
    strcpy(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    strcpy(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    r.method = "PUT";
    r.url = "https://sparta-images.s3.us-east-1.amazonaws.com/xformed_photos/2024/a%20b.jpg?x-id=PutObject";
    r.headers = h;
    r.header_count = presign ? 1 : 3;
    r.payload_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    p.credentials = &c;
    p.region = "us-east-1";
    p.service = "s3";
    p.time = 1700000000;
    p.mode = SPIM_SIGV4_S3;
    p.expires = 3600;
    st = presign ? spim_sigv4_presign(&r, &p, url, &res, NULL) : spim_sigv4_sign(&r, &p, &res, NULL);
    spim_sigv4_result_free(&res);
    return st == SPIM_OK;
}

int main(int argc, char **argv)
{
    int mib = argc > 1 ? atoi(argv[1]) : 64, rounds = argc > 2 ? atoi(argv[2]) : 5, i, k;
    size_t n = (size_t)(mib > 0 ? mib : 64) << 20;
    unsigned char *data = (unsigned char *)malloc(n), digest[SPIM_SHA256_SIZE];
    double t[32];
    spim_buf url = SPIM_BUF_INIT;
    if (!data || rounds < 1 || rounds > 32) return 2;
    for (i = 0; i < (int)n; i++) data[i] = (unsigned char)(i * 131 + 7);
    for (k = 0; k < rounds; k++) {
        int64_t t0 = spim_now_ms();
        spim_sha256(data, n, digest);
        t[k] = (double)(n >> 20) * 1000.0 / (double)(spim_now_ms() - t0 + 1);
    }
    printf("sha256 %.0f MiB/s\n", median(t, rounds));
    for (k = 0; k < rounds; k++) {
        int64_t t0 = spim_now_ms();
        for (i = 0; i < 20000; i++)
            if (!sign_once(0, &url)) return 1;
        t[k] = 20000.0 * 1000.0 / (double)(spim_now_ms() - t0 + 1);
    }
    printf("sign %.0f signatures/s\n", median(t, rounds));
    for (k = 0; k < rounds; k++) {
        int64_t t0 = spim_now_ms();
        for (i = 0; i < 20000; i++)
            if (!sign_once(1, &url)) return 1;
        t[k] = 20000.0 * 1000.0 / (double)(spim_now_ms() - t0 + 1);
    }
    printf("presign %.0f urls/s\n", median(t, rounds));
    spim_buf_free(&url);
    free(data);
    return 0;
}
