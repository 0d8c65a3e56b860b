/* pipeline FILE [RUNS] - where the time of one JPEG -> stamp -> JPEG job
   goes: decode, stamp (default stamp, native size, bottom-right), encode.
   Prints one markdown row of medians in milliseconds. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"

#include <stdio.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    enum { MAXRUNS = 31 };
    double t[3][MAXRUNS];
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp st;
    spim_error err;
    int runs = argc > 2 ? atoi(argv[2]) : 5, r, k;
    if (argc < 2 || runs < 1 || runs > MAXRUNS) {
        fprintf(stderr, "usage: pipeline FILE [RUNS<=31]\n");
        return 2;
    }
    if (spim_read_file(argv[1], 0, &in, &err) != SPIM_OK ||
        spim_stamp_load(&st, spim_stamp_png, sizeof spim_stamp_png, &err) != SPIM_OK) {
        fprintf(stderr, "pipeline: %s\n", err.message);
        return 1;
    }
    for (r = 0; r < runs; r++) {
        spim_image img;
        double t0 = now_ms(), t1, t2;
        if (spim_image_decode(in.data, in.len, 0, &img, &err) != SPIM_OK) {
            fprintf(stderr, "pipeline: %s\n", err.message);
            return 1;
        }
        t1 = now_ms();
        spim_image_stamp(&img, &st, NULL, &err);
        t2 = now_ms();
        spim_buf_reset(&out);
        spim_image_encode(&img, SPIM_FORMAT_JPEG, 90, &out, &err);
        t[0][r] = t1 - t0; t[1][r] = t2 - t1; t[2][r] = now_ms() - t2;
        spim_image_free(&img);
    }
    for (k = 0; k < 3; k++) qsort(t[k], (size_t)runs, sizeof t[k][0], cmp_double);
    printf("| %s | %.1f | %.2f | %.1f | %.1f |\n", argv[1], t[0][runs / 2], t[1][runs / 2], t[2][runs / 2],
           t[0][runs / 2] + t[1][runs / 2] + t[2][runs / 2]);
    spim_stamp_free(&st);
    spim_buf_free(&in);
    spim_buf_free(&out);
    return 0;
}
