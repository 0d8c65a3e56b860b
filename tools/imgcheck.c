/* imgcheck - what the imager tests need to know about an image.

     imgcheck info FILE
         format=jpeg width=W height=H channels=C orientation=O
     imgcheck diff ORIGINAL STAMPED [THRESHOLD]
         changed=N bbox=X0,Y0,X1,Y1 width=W height=H max=M
     Pixels whose largest channel difference exceeds THRESHOLD (default 0)
     count as changed; bbox is their bounding box in stored orientation,
     inclusive (-1,-1,-1,-1 when none), max the largest difference anywhere.
     Both images must have the same stored size; channels beyond the ones
     they share are ignored.

   Exit status 0 on success, 1 when an image cannot be read, 2 for usage. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(const char *path, spim_image *img)
{
    spim_buf file = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    memset(&err, 0, sizeof err);
    st = spim_read_file(path, 0, &file, &err);
    if (st == SPIM_OK) st = spim_image_decode(file.data, file.len, 0, img, &err);
    spim_buf_free(&file);
    if (st != SPIM_OK) fprintf(stderr, "imgcheck: %s: %s\n", path, err.message);
    return st == SPIM_OK;
}

static int info(const char *path)
{
    spim_image img;
    if (!load(path, &img)) return 1;
    printf("format=%s width=%d height=%d channels=%d orientation=%d\n", spim__format_name(img.meta.format),
           img.width, img.height, img.channels, img.meta.orientation);
    spim_image_free(&img);
    return 0;
}

static int diff(const char *a_path, const char *b_path, int threshold)
{
    spim_image a, b;
    long changed = 0;
    int x, y, c, n, max = 0, x0 = -1, y0 = -1, x1 = -1, y1 = -1;
    if (!load(a_path, &a)) return 1;
    if (!load(b_path, &b)) {
        spim_image_free(&a);
        return 1;
    }
    if (a.width != b.width || a.height != b.height) {
        fprintf(stderr, "imgcheck: sizes differ: %dx%d and %dx%d\n", a.width, a.height, b.width, b.height);
        spim_image_free(&a);
        spim_image_free(&b);
        return 1;
    }
    n = a.channels < b.channels ? a.channels : b.channels;
    for (y = 0; y < a.height; y++) {
        for (x = 0; x < a.width; x++) {
            const unsigned char *p = a.pixels + ((size_t)y * a.width + x) * a.channels;
            const unsigned char *q = b.pixels + ((size_t)y * b.width + x) * b.channels;
            int d = 0;
            for (c = 0; c < n; c++) d = abs(p[c] - q[c]) > d ? abs(p[c] - q[c]) : d;
            if (d > max) max = d;
            if (d <= threshold) continue;
            changed++;
            if (x0 < 0 || x < x0) x0 = x;
            if (y0 < 0) y0 = y;
            if (x > x1) x1 = x;
            y1 = y;
        }
    }
    printf("changed=%ld bbox=%d,%d,%d,%d width=%d height=%d max=%d\n", changed, x0, y0, x1, y1, a.width,
           a.height, max);
    spim_image_free(&a);
    spim_image_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "info") == 0) return info(argv[2]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "diff") == 0)
        return diff(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 0);
    fprintf(stderr, "usage: imgcheck info FILE | imgcheck diff ORIGINAL STAMPED [THRESHOLD]\n");
    return 2;
}
