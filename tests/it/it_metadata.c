/* it_metadata FILE - what the project's own metadata parser (spim__meta_read)
   finds in a JPEG or PNG, one "name value" line each, for
   tests/it/it_metadata.sh to compare with Pillow:
     orientation N / exif_len N / ifd0 TAG,TAG,... (hex) / icc_sha256 HEX|none */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_S3
#define SPIM_NO_EVENTS
#define SPIM_NO_LAMBDA
#include "sparta_imager.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    spim_buf in = SPIM_BUF_INIT;
    spim_meta m;
    spim_error err;
    unsigned char sha[32];
    uint32_t ifd, count, i;
    int le;
    if (argc != 2) {
        fprintf(stderr, "usage: it_metadata FILE\n");
        return 2;
    }
    if (spim_read_file(argv[1], 0, &in, &err) != SPIM_OK ||
        spim__meta_read(in.data, in.len, &m, &err) != SPIM_OK) {
        fprintf(stderr, "it_metadata: %s\n", err.message);
        return 1;
    }
    printf("orientation %d\nexif_len %zu\nifd0 ", m.orientation, m.exif_len);
    le = m.exif ? spim__tiff_order(m.exif, m.exif_len) : -1;
    if (le >= 0 && spim__tiff_ifd0(m.exif, m.exif_len, le, &ifd, &count))
        for (i = 0; i < count; i++)
            printf("%s%04x", i ? "," : "", spim__rd16(m.exif + ifd + 2 + 12 * (size_t)i, le));
    printf("\nicc_sha256 ");
    if (m.icc) {
        spim_sha256(m.icc, m.icc_len, sha);
        for (i = 0; i < 32; i++) printf("%02x", sha[i]);
    } else {
        printf("none");
    }
    printf("\n");
    spim__meta_free(&m);
    spim_buf_free(&in);
    return 0;
}
