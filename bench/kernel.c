/* Kernel benchmark: the stamp blend (every path this CPU has) against
   pixman's OVER and against memcpy of the same destination bytes, for a
   512x512 logo-like stamp and a random-alpha stamp, on RGB and RGBA.
   Prints a markdown table; each figure is the median of REPEATS runs.

   Fairness: our stamp is prepared once (spim__layer_span for every row: laid out
   like the destination, opacity applied) and pixman's source is prepared
   once (premultiplied a8r8g8b8); neither preparation is timed in the blend
   columns, ours is reported on its own. RGB is 24-bit on both sides
   (pixman r8g8b8); pixman's 32-bit x8r8g8b8 is shown too, its fastest
   opaque format. RGBA destinations are opaque (a photo with alpha). */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include <pixman.h>

#include <stdio.h>
#include <time.h>

#define N 512
#define REPEATS 15

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint32_t rs = 99;
static unsigned rnd(void)
{
    rs ^= rs << 13; rs ^= rs >> 17; rs ^= rs << 5;
    return rs;
}

/* A logo: a ring and a disc with anti-aliased edges and a translucent band,
   so most pixels are fully transparent or opaque, as in a real stamp. */
static void make_stamp(unsigned char *rgba, int random_alpha)
{
    int x, y;
    for (y = 0; y < N; y++)
        for (x = 0; x < N; x++) {
            unsigned char *p = rgba + (y * N + x) * 4;
            double dx = x - N / 2 + 0.5, dy = y - N / 2 + 0.5, r = sqrt(dx * dx + dy * dy), cov;
            p[0] = (unsigned char)(200 + x % 50); p[1] = (unsigned char)(150 + y % 80); p[2] = 60;
            if (random_alpha) { p[3] = (unsigned char)rnd(); continue; }
            cov = r < 180 ? 1 : r < 181 ? 181 - r : r < 200 ? 0 : r < 201 ? r - 200 : r < 240 ? 1 : r < 241 ? 241 - r : 0;
            if (r < 180 && dy > 40 && dy < 80) cov = 0.5;
            p[3] = (unsigned char)(cov * 255 + 0.5);
        }
}

/* One thing being timed: our kernel at a level, pixman into a destination
   format, or memcpy. Runs alternate between them so a load change on the
   shared machine hits all of them alike. */
typedef struct contestant {
    int kind;                 /* 0 ours, 1 pixman, 2 memcpy */
    spim__row_fn row;
    pixman_image_t *src, *dst;
    double t[REPEATS];
} contestant;

typedef struct job {
    const unsigned char *color, *alpha;   /* the prepared stamp, N rows */
    unsigned char *dst, *copy;
    int ch, iters;
} job;

/* Seconds per blend of the whole stamp (one run of `iters`). */
static double run_once(const contestant *c, const job *j)
{
    double t0 = now_s();
    int i, y;
    size_t row = (size_t)N * (size_t)j->ch;
    for (i = 0; i < j->iters; i++) {
        if (c->kind == 0)
            for (y = 0; y < N; y++)
                c->row(j->dst + y * row, j->color + y * row, j->alpha + y * row, row, j->ch);
        else if (c->kind == 1)
            pixman_image_composite32(PIXMAN_OP_OVER, c->src, NULL, c->dst, 0, 0, 0, 0, 0, 0, N, N);
        else {
            memcpy(j->copy, j->dst, row * N);
            __asm__ __volatile__("" : : "r"(j->copy) : "memory");
        }
    }
    return (now_s() - t0) / j->iters;
}

static double mpx_median(contestant *c)
{
    qsort(c->t, REPEATS, sizeof c->t[0], cmp_double);
    return N * N / c->t[REPEATS / 2] / 1e6;
}

static void run_case(const char *stamp_name, const unsigned char *rgba, int ch, int iters)
{
    static const spim__simd levels[] = { SPIM__SIMD_SCALAR, SPIM__SIMD_SSE2, SPIM__SIMD_AVX2, SPIM__SIMD_NEON };
    unsigned char *dst = (unsigned char *)malloc((size_t)N * N * 4), *copy = (unsigned char *)malloc((size_t)N * N * 4);
    uint32_t *premul = (uint32_t *)malloc((size_t)N * N * 4), *pbits = (uint32_t *)malloc((size_t)N * N * 4);
    contestant c[7];
    int nc = 0, i, k, r, pix = -1, pix32 = -1;
    spim_stamp st;
    spim__layer L;
    unsigned char *prepared = (unsigned char *)malloc((size_t)N * N * 8);
    job j;
    double best = 0, prep, t0;
    st.rgba = (unsigned char *)(uintptr_t)rgba; st.width = N; st.height = N;
    for (i = 0; i < N * N * ch; i++) dst[i] = (unsigned char)rnd();
    if (ch == 4) for (i = 3; i < N * N * 4; i += 4) dst[i] = 255;
    t0 = now_s();
    for (i = 0; i < 20; i++) {
        int y;
        spim__layer_place(&L, &st, 0, 0, 1, N, N, ch, 255);
        for (y = 0; y < N; y++)
            spim__layer_span(&L, y, L.x, L.x + L.w, prepared + (size_t)y * N * ch, prepared + (size_t)(N + y) * N * ch);
    }
    prep = (now_s() - t0) / 20;
    /* pixman: premultiplied source, destination of the same bytes per pixel */
    for (i = 0; i < N * N; i++) {
        const unsigned char *p = rgba + i * 4;
        unsigned a = p[3];
        premul[i] = (uint32_t)a << 24 | (uint32_t)((p[0] * a + 127) / 255) << 16 |
                    (uint32_t)((p[1] * a + 127) / 255) << 8 | (uint32_t)((p[2] * a + 127) / 255);
    }
    memcpy(pbits, dst, (size_t)N * N * ch);
    memset(c, 0, sizeof c);
    for (k = 0; k < 4; k++)
        if (spim__simd_available(levels[k])) { c[nc].kind = 0; c[nc].row = spim__row_for(levels[k]); nc++; }
    c[nc].kind = 1;
    c[nc].src = pixman_image_create_bits(PIXMAN_a8r8g8b8, N, N, premul, N * 4);
    c[nc].dst = pixman_image_create_bits(ch == 3 ? PIXMAN_r8g8b8 : PIXMAN_a8r8g8b8, N, N, pbits, N * ch);
    pix = nc++;
    if (ch == 3) {
        c[nc] = c[pix];
        c[nc].dst = pixman_image_create_bits(PIXMAN_x8r8g8b8, N, N, pbits, N * 4);
        pix32 = nc++;
    }
    c[nc++].kind = 2;
    j.color = prepared; j.alpha = prepared + (size_t)N * N * ch; j.dst = dst; j.copy = copy; j.ch = ch; j.iters = iters;
    for (r = 0; r < REPEATS; r++)
        for (k = 0; k < nc; k++) c[k].t[r] = run_once(&c[k], &j);
    printf("| %s | %s |", stamp_name, ch == 3 ? "RGB" : "RGBA");
    for (k = 0, i = 0; k < 4; k++) {
        double m;
        if (!spim__simd_available(levels[k])) { printf(" - |"); continue; }
        m = mpx_median(&c[i++]);
        if (m > best) best = m;
        printf(" %.0f |", m);
    }
    if (ch == 3) printf(" %.0f (x8r8g8b8: %.0f) |", mpx_median(&c[pix]), mpx_median(&c[pix32]));
    else printf(" %.0f |", mpx_median(&c[pix]));
    printf(" %.2fx | %.0f | %.2f |\n", best / (N * N / c[pix].t[REPEATS / 2] / 1e6), mpx_median(&c[nc - 1]), prep * 1e3);
    pixman_image_unref(c[pix].src);
    pixman_image_unref(c[pix].dst);
    if (pix32 >= 0) pixman_image_unref(c[pix32].dst);
    free(prepared);
    free(dst); free(copy); free(premul); free(pbits);
}

int main(int argc, char **argv)
{
    unsigned char *logo = (unsigned char *)malloc((size_t)N * N * 4), *noise = (unsigned char *)malloc((size_t)N * N * 4);
    int iters = argc > 1 ? atoi(argv[1]) : 40;
    if (iters < 1) iters = 1;
    make_stamp(logo, 0);
    make_stamp(noise, 1);
    printf("\n### Stamp kernel, 512x512 stamp, Mpixel/s (median of %d x %d blends)\n\n", REPEATS, iters);
    printf("| stamp | destination | scalar | sse2 | avx2 | neon | pixman OVER | best / pixman | memcpy | stamp prep ms |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    run_case("logo", logo, 3, iters);
    run_case("logo", logo, 4, iters);
    run_case("random alpha", noise, 3, iters);
    run_case("random alpha", noise, 4, iters);
    free(logo); free(noise);
    return 0;
}
