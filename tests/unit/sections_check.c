/* Built once per combination of SPIM_NO_S3, SPIM_NO_EVENTS, SPIM_NO_IMAGE and
   SPIM_NO_LAMBDA (mk/sections.mk), linked with only the libraries the sections
   left in need, and run: each section that is in does one real thing. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <stdio.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL %s\n", what);
        failures++;
    }
}

int main(void)
{
    static const char abc_sha256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    unsigned char digest[SPIM_SHA256_SIZE];
    char hex[SPIM_SHA256_HEX_SIZE];
    spim_credentials cr;
    spim_sigv4_request req;
    spim_sigv4_params prm;
    spim_sigv4_result sig;
    spim_error err;
    memset(&err, 0, sizeof err);

    /* base + crypto + sigv4: always there */
    spim_sha256("abc", 3, digest);
    spim__hex(digest, sizeof digest, hex);
    check(strcmp(hex, abc_sha256) == 0, "sha256(abc)");
    memset(&cr, 0, sizeof cr);
    strcpy(cr.access_key_id, "AKIDEXAMPLE");
    strcpy(cr.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    memset(&req, 0, sizeof req);
    memset(&prm, 0, sizeof prm);
    req.method = "GET";
    req.url = "https://example.amazonaws.com/";
    prm.credentials = &cr;
    prm.region = "us-east-1";
    prm.service = "service";
    prm.time = 1440938160; /* 20150830T123600Z, the AWS suite's date */
    check(spim_sigv4_sign(&req, &prm, &sig, &err) == SPIM_OK, err.message);
    /* get-vanilla from the AWS SigV4 test suite */
    check(strcmp(sig.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0,
          "get-vanilla signature");
    spim_sigv4_result_free(&sig);
#ifndef SPIM_NO_EVENTS
    {
        static const char ev[] = "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
                                 "{\"name\":\"b\"},\"object\":{\"key\":\"a+b.jpg\",\"size\":1}}}]}";
        spim_event *e = NULL;
        check(spim_event_parse(ev, sizeof ev - 1, NULL, &e, &err) == SPIM_OK, err.message);
        check(e && e->record_count == 1 && strcmp(e->records[0].key, "a b.jpg") == 0, "event key");
        spim_event_free(e);
    }
#endif
#ifndef SPIM_NO_IMAGE
    {
        static const unsigned char px[4] = { 255, 0, 0, 255 };
        spim_image img;
        spim_buf png = SPIM_BUF_INIT;
        memset(&img, 0, sizeof img);
        img.pixels = (unsigned char *)SPIM_MALLOC(4);
        memcpy(img.pixels, px, 4);
        img.width = img.height = 1;
        img.channels = 4;
        img.meta.format = SPIM_FORMAT_PNG;
        img.meta.orientation = 1;
        check(spim_image_encode(&img, SPIM_FORMAT_PNG, 0, &png, &err) == SPIM_OK, err.message);
        spim_image_free(&img);
        check(spim_image_decode(png.data, png.len, 0, &img, &err) == SPIM_OK && img.width == 1 &&
              memcmp(img.pixels, px, 4) == 0, "png round trip");
        spim_image_free(&img);
        spim_buf_free(&png);
    }
#endif
#ifndef SPIM_NO_S3
    {
        spim_s3_options o;
        spim_s3_client *c = NULL;
        spim_buf url = SPIM_BUF_INIT;
        memset(&o, 0, sizeof o);
        o.credentials = &cr;
        o.region = "us-east-1";
        o.endpoint = "http://127.0.0.1:9";
        check(spim_s3_client_create(&o, &c, &err) == SPIM_OK, err.message);
        check(c && spim_s3_presign_get(c, "bucket", "a b.jpg", 60, &url, &err) == SPIM_OK &&
              strstr((const char *)url.data, "/bucket/a%20b.jpg?") != NULL, "presigned URL");
        spim_buf_free(&url);
        spim_s3_client_free(c);
    }
#endif
#ifndef SPIM_NO_LAMBDA
    {
        spim_response resp;
        memset(&resp, 0, sizeof resp);
        check(spim_response_ok(&resp, "{}", 2, NULL) == SPIM_OK && resp.payload.len == 2, "response");
        spim_buf_free(&resp.payload);
    }
#endif
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures != 0;
}
