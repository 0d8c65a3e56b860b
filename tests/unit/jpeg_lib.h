/* What the JPEG unit tests share (test_jpeg, test_jpeg_progressive,
   test_jpeg_recode): libjpeg's error handler that jumps back instead of
   exiting, a photo-like source image, the coefficient reader that proves a
   block unchanged, and two progressive scan scripts of our own. libjpeg
   (libjpeg62-turbo-dev) is a test dependency only. Include after
   sparta_imager.h and spim_test.h. */
#ifndef SPIM_TEST_JPEG_LIB_H
#define SPIM_TEST_JPEG_LIB_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

#if defined(__GNUC__)
#define JPEG_LIB_UNUSED __attribute__((unused))
#else
#define JPEG_LIB_UNUSED
#endif

typedef struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
} jerr;

JPEG_LIB_UNUSED static void jerr_exit(j_common_ptr c)
{
    longjmp(((jerr *)c->err)->jump, 1);
}

/* A photo-like test image: gradients, texture and hard edges. */
JPEG_LIB_UNUSED static unsigned char *make_photo(int w, int h, int seed)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
    unsigned r = (unsigned)seed * 2654435761u + 1;
    int x, y, k;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (k = 0; k < 3; k++) {
                int v = (x * (k + 1) * 255) / w / 2 + (y * (3 - k) * 255) / h / 3;
                r = r * 1103515245u + 12345u;
                v += (int)((r >> 16) % 24) - 12;
                if (((x / 37) + (y / 23)) % 5 == 0) v = 255 - v;
                p[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)k] =
                    (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return p;
}

/* Every DCT block of a JPEG as libjpeg reads it (jpeg_read_coefficients),
   with the quantisation tables, per component: 1, 2 when libjpeg warned on
   the way (a corrupt-data warning is a defect in our output), 0 when it
   failed. */
typedef struct coefs {
    int nc, w[3], h[3], hs[3], vs[3];
    uint16_t q[3][64];
    short *blk[3]; /* w*h blocks of 64 */
} coefs;

JPEG_LIB_UNUSED static int read_coefs(const spim_buf *in, coefs *k)
{
    struct jpeg_decompress_struct d;
    jerr e;
    jvirt_barray_ptr *arr;
    int ci;
    memset(k, 0, sizeof *k);
    d.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&d);
        return 0;
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, in->data, (unsigned long)in->len);
    jpeg_read_header(&d, TRUE);
    arr = jpeg_read_coefficients(&d);
    k->nc = d.num_components;
    for (ci = 0; ci < k->nc && ci < 3; ci++) {
        jpeg_component_info *cp = &d.comp_info[ci];
        JDIMENSION r, x;
        int i;
        k->w[ci] = (int)cp->width_in_blocks;
        k->h[ci] = (int)cp->height_in_blocks;
        k->hs[ci] = cp->h_samp_factor;
        k->vs[ci] = cp->v_samp_factor;
        for (i = 0; i < 64; i++) k->q[ci][i] = cp->quant_table->quantval[i];
        k->blk[ci] = (short *)malloc((size_t)k->w[ci] * (size_t)k->h[ci] * 64 * sizeof(short));
        for (r = 0; r < cp->height_in_blocks; r++) {
            JBLOCKARRAY row = d.mem->access_virt_barray((j_common_ptr)&d, arr[ci], r, 1, FALSE);
            for (x = 0; x < cp->width_in_blocks; x++)
                for (i = 0; i < 64; i++)
                    k->blk[ci][((size_t)r * (size_t)k->w[ci] + x) * 64 + (size_t)i] = row[0][x][i];
        }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return e.mgr.num_warnings == 0 ? 1 : 2;
}

JPEG_LIB_UNUSED static void free_coefs(coefs *k)
{
    int i;
    for (i = 0; i < 3; i++) free(k->blk[i]);
}

/* Progressive scripts of our own (libjpeg's jpeg_scan_info): for three
   components, a non-interleaved luma DC, bands split at 9, chroma AC in one
   band, and two refinement steps; for grey, a band split at 2 and refined
   twice. */
JPEG_LIB_UNUSED static const jpeg_scan_info custom3[] = {
    { 1, { 0 }, 0, 0, 0, 2 },   { 2, { 1, 2 }, 0, 0, 0, 1 }, { 1, { 0 }, 1, 9, 0, 2 },
    { 1, { 0 }, 10, 63, 0, 1 }, { 1, { 1 }, 1, 63, 0, 0 },   { 1, { 2 }, 1, 63, 0, 1 },
    { 1, { 0 }, 0, 0, 2, 1 },   { 1, { 0 }, 0, 0, 1, 0 },    { 2, { 1, 2 }, 0, 0, 1, 0 },
    { 1, { 0 }, 1, 9, 2, 1 },   { 1, { 0 }, 1, 9, 1, 0 },    { 1, { 0 }, 10, 63, 1, 0 },
    { 1, { 2 }, 1, 63, 1, 0 },
};
JPEG_LIB_UNUSED static const jpeg_scan_info custom1[] = {
    { 1, { 0 }, 0, 0, 0, 1 }, { 1, { 0 }, 1, 2, 0, 2 }, { 1, { 0 }, 3, 63, 0, 1 },
    { 1, { 0 }, 1, 2, 2, 1 }, { 1, { 0 }, 0, 0, 1, 0 }, { 1, { 0 }, 1, 2, 1, 0 },
    { 1, { 0 }, 3, 63, 1, 0 },
};

#endif
